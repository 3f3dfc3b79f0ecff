"""Region geometry written as text after a region's slots (``region_text="geometry"``).

Osprey gives the LLM a region only as two feature vectors (``<mask>``, ``<pos>``). A small LLM
did not learn to read position or size from those (docs/osprey-small.md: a linear probe finds the
box in ``<pos>``, yet single-region position questions stayed at chance). Hybrid region
representations (Ferret: coordinates in text next to a region feature) give the LLM the geometry in
the one form it already reads: digits. This module writes, for one mask::

    {x=23 y=07 area=051}

``x`` and ``y``: the centroid of the mask's pixels in percent of the image width and height
(00..99); ``area``: the mask's pixel count in per mille of the image (000..999, a whole-image mask
included). Fixed widths put each digit at the same place for every region, so the tens of one
region's ``x`` line up with the tens of another's. All three come from the mask alone, so training,
the evaluation and every inference path compute the same string.
Off by default (the official layout has no such text and the released checkpoint never saw it).
"""

from __future__ import annotations

import numpy as np
import torch

REGION_TEXT_CHOICES: tuple[str, ...] = ("none", "geometry")


def check_region_text(mode: str) -> str:
    """``mode`` if it is a region-text mode, else a ValueError naming the choices."""
    if mode not in REGION_TEXT_CHOICES:
        raise ValueError(f"region_text must be one of {REGION_TEXT_CHOICES}, got {mode!r}")
    return mode


def region_geometry_text(mask: np.ndarray | torch.Tensor) -> str:
    """``"{x=.. y=.. area=...}"`` for one (H, W) mask (nonzero = inside); ``"{area=000}"`` if empty."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a region mask must be (H, W), got shape {mask.shape}")
    height, width = mask.shape
    ys, xs = np.nonzero(mask > 0)
    if xs.size == 0:
        return "{area=000}"
    x = min(int((xs.mean() + 0.5) / width * 100), 99)
    y = min(int((ys.mean() + 0.5) / height * 100), 99)
    area = min(round(xs.size * 1000 / (height * width)), 999)
    return f"{{x={x:02d} y={y:02d} area={area:03d}}}"


def region_texts(masks: np.ndarray | torch.Tensor | list, mode: str) -> list[str] | None:
    """The text written after each region's slots, one per mask, or None for ``mode="none"``."""
    if check_region_text(mode) == "none":
        return None
    return [region_geometry_text(m) for m in masks]
