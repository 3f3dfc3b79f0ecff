"""Mask providers: turn a click, a box or nothing at all ("segment everything") into region masks.

Osprey itself only reads masks; the official demo gets them from SAM ViT-B (one positive click or
a box through ``SamPredictor``, "segment everything" through the automatic generator, masks sorted
by area and a click picking the smallest mask that contains it). Every provider here has that
surface:

- ``from_points(image, points, labels=None) -> (H, W) bool``  (labels: 1 = inside, 0 = outside)
- ``from_box(image, box) -> (H, W) bool``                     (box: ``[x0, y0, x1, y1]`` pixels)
- ``everything(image) -> list[(H, W) bool]``                  (largest first, as the official demo)
- ``pick(masks, x, y) -> int | None``                         (smallest mask containing the point)

Backends: :class:`GrabCutProvider` needs no weights (OpenCV colour flood fill + GrabCut), so
click-to-mask works on a fresh machine; :class:`SamProvider` (segment-anything ViT-B/L/H and
MobileSAM) and :class:`Sam2Provider` build their model from a local checkpoint file only — nothing
is downloaded — and say which package to install when it is missing.
"""

from __future__ import annotations

from pathlib import Path

from osprey.inference.providers.base import ImageInput, MaskProvider, ProviderError
from osprey.inference.providers.grabcut import GrabCutProvider
from osprey.inference.providers.sam import SAM2_CONFIGS, SAM_TYPES, Sam2Provider, SamProvider

__all__ = ["SAM2_CONFIGS", "SAM_TYPES", "GrabCutProvider", "ImageInput", "MaskProvider", "ProviderError",
           "Sam2Provider", "SamProvider", "build_provider"]


def build_provider(checkpoint: str | Path | None = None, model_type: str = "vit_b", **kwargs) -> MaskProvider:
    """SAM / MobileSAM / SAM 2 from a local checkpoint by ``model_type``; GrabCut when no checkpoint."""
    if checkpoint is None:
        return GrabCutProvider()
    if model_type in SAM2_CONFIGS:
        return Sam2Provider(checkpoint, model_type, **kwargs)
    if model_type in SAM_TYPES:
        return SamProvider(checkpoint, model_type, **kwargs)
    raise ProviderError(f"mask provider type {model_type!r}; expected one of "
                        f"{', '.join(SAM_TYPES + tuple(SAM2_CONFIGS))}")
