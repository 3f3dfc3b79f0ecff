"""Region specs from users and clients, turned into one image's ``(R, H, W)`` masks, and checked.

A region spec is one of:
    numpy array / torch tensor (H, W)      non-zero is inside
    {"size": [H, W], "counts": ...}         COCO RLE, compressed (str/bytes) or uncompressed (list)
    {"segmentation": <polygons | RLE>}      a COCO annotation's segmentation field
    [[x1, y1, x2, y2, ...], ...]            COCO polygons (also {"polygons": [...]})
    "mask.png" / Path                       a PNG mask file, any non-zero pixel inside (also {"png": ...})
    {"box": [x0, y0, x1, y1]}               the filled box; with "segment": true the mask provider
                                            segments the object in the box instead
    {"points": [[x, y], ...], "labels": [1, 0, ...]}  (or {"point": [x, y]}) resolved by a mask
                                            provider (``provider.from_points(image, points, labels)``)
Decoding goes through :mod:`osprey.masks`, the one mask module; this file only dispatches,
resolves prompts with a provider, and checks what the predictor needs: every mask at the image's
size, none empty, not too many.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from osprey import masks as mask_io

MAX_REGIONS = 64  # per image: the official model saw <= 20 per sample; this bounds batch memory


class RegionError(ValueError):
    """A region spec or mask that cannot be used for the image (names the region index)."""


class PromptProvider(Protocol):
    """What :func:`to_masks` needs from a mask provider (see ``osprey.inference.providers``)."""

    def from_points(self, image: Any, points: Sequence[Sequence[float]], labels: Sequence[int] | None = None) -> Any: ...

    def from_box(self, image: Any, box: Sequence[float]) -> Any: ...


def to_masks(
    regions: Sequence[Any],
    height: int,
    width: int,
    *,
    provider: PromptProvider | None = None,
    image: Any = None,
    max_regions: int = MAX_REGIONS,
) -> np.ndarray:
    """``(R, height, width)`` bool masks from region specs (see the module docstring).

    ``provider`` and ``image`` are needed only for point prompts and ``"segment": true`` boxes.
    Raises :class:`RegionError` naming the region index for any bad or empty region.
    """
    if isinstance(regions, str | bytes | Mapping | np.ndarray | torch.Tensor):
        raise RegionError(f"regions must be a list of region specs, got one {type(regions).__name__}")
    if len(regions) > max_regions:
        raise RegionError(f"{len(regions)} regions given; at most {max_regions} per image are allowed")
    decoded = [_decode_one(i, spec, height, width, provider, image) for i, spec in enumerate(regions)]
    if not decoded:
        return np.zeros((0, height, width), dtype=bool)
    stacked = np.stack(decoded)
    check_masks(stacked, (height, width), max_regions=max_regions)
    return stacked


def _decode_one(index: int, spec: Any, height: int, width: int, provider: PromptProvider | None, image: Any) -> np.ndarray:
    try:
        mask = _decode(index, spec, height, width, provider, image)
    except mask_io.MaskError as err:
        raise RegionError(f"region {index}: {err}") from None
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise RegionError(f"region {index}: mask of shape {mask.shape}; expected the image's ({height}, {width})")
    return mask != 0


def _decode(index: int, spec: Any, height: int, width: int, provider: PromptProvider | None, image: Any) -> Any:
    if isinstance(spec, torch.Tensor):
        spec = spec.detach().cpu().numpy()
    if isinstance(spec, np.ndarray):
        if spec.shape != (height, width):
            raise RegionError(f"region {index}: mask array of shape {spec.shape}; expected the image's ({height}, {width})")
        return mask_io.from_array(spec, height, width)
    if isinstance(spec, str | Path):
        return mask_io.load_png_mask(spec, height=height, width=width)
    if isinstance(spec, list | tuple):
        return mask_io.decode_polygons([list(p) for p in spec], height, width)
    if not isinstance(spec, Mapping):
        raise RegionError(
            f"region {index} is a {type(spec).__name__} ({_short(spec)}); expected a mask array, RLE dict, "
            "polygon list, PNG path, {'box': [x0, y0, x1, y1]} or {'points': [[x, y], ...]}"
        )
    if "counts" in spec:
        return mask_io.decode_segmentation(dict(spec), height, width)
    if "segmentation" in spec:
        return mask_io.decode_segmentation(spec["segmentation"], height, width)
    if "polygons" in spec:
        return mask_io.decode_polygons([list(p) for p in spec["polygons"]], height, width)
    if "png" in spec:
        return mask_io.load_png_mask(spec["png"], height=height, width=width)
    if "box" in spec:
        return _box(index, spec, height, width, provider, image)
    if "points" in spec or "point" in spec:
        return _points(index, spec, height, width, provider, image)
    raise RegionError(
        f"region {index} has keys {sorted(spec)}; expected one of 'counts' (RLE), 'segmentation', "
        "'polygons', 'png', 'box', 'points', 'point'"
    )


def _box(index: int, spec: Mapping, height: int, width: int, provider: PromptProvider | None, image: Any) -> Any:
    x0, y0, x1, y1 = mask_io.check_box(spec["box"])
    if spec.get("segment", False):
        return _need_provider(index, spec, provider, image).from_box(image, [x0, y0, x1, y1])
    return mask_io.decode_box(mask_io.xyxy_to_xywh([x0, y0, x1, y1]), height, width)


def _points(index: int, spec: Mapping, height: int, width: int, provider: PromptProvider | None, image: Any) -> Any:
    points = spec["points"] if "points" in spec else [spec["point"]]
    labels = spec.get("labels")
    mask_io.check_points(points, labels, height, width)
    chosen = _need_provider(index, spec, provider, image)
    return chosen.from_points(image, [list(p) for p in points], labels)


def _need_provider(index: int, spec: Mapping, provider: PromptProvider | None, image: Any) -> PromptProvider:
    if provider is None:
        raise RegionError(
            f"region {index} ({_short(dict(spec))}) is a prompt that needs a mask provider to segment it; "
            "pass provider=... (e.g. osprey.inference.providers.build_provider()) or give a mask"
        )
    if image is None:
        raise RegionError(f"region {index} needs the image to run the mask provider on; pass image=...")
    return provider


def check_masks(masks: Any, size: tuple[int, int], *, max_regions: int = MAX_REGIONS) -> torch.Tensor:
    """``(R, H, W)`` masks (array, tensor, or list of (H, W) arrays) as float32, checked against the
    image ``size = (H, W)``: right shape, none empty, at most ``max_regions``."""
    if isinstance(masks, list | tuple):
        if not masks:
            return torch.zeros((0, *size), dtype=torch.float32)
        masks = np.stack([np.asarray(m.detach().cpu() if isinstance(m, torch.Tensor) else m) for m in masks])
    tensor = masks if isinstance(masks, torch.Tensor) else torch.as_tensor(np.asarray(masks))
    if tensor.dim() != 3 or tuple(tensor.shape[-2:]) != tuple(size):
        raise RegionError(
            f"masks of shape {tuple(tensor.shape)}; expected (R, {size[0]}, {size[1]}) to match the image's "
            f"(H, W) = {tuple(size)}"
        )
    count = int(tensor.shape[0])
    if count > max_regions:
        raise RegionError(f"{count} regions given; at most {max_regions} per image are allowed")
    tensor = tensor.float()
    empty = (tensor.flatten(1) == 0).all(1).nonzero().flatten().tolist()
    if empty:
        raise RegionError(f"region {empty[0]} is empty (no pixel inside); empty regions: {empty}")
    return tensor


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
