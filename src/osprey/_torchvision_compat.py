"""The one place that makes torchvision importable beside the CPU build of torch.

PyPI's torchvision 0.28 wheel is linked against CUDA torch; beside the CPU wheel of torch 2.13 its
import fails with ``operator torchvision::nms does not exist`` while registering fake kernels.
transformers, timm, open_clip, peft, sentence-transformers and segment_anything all import
torchvision, so every one of them would fail. Defining the two missing operator schemas before
torchvision is first imported is enough: transforms, models and ``roi_align`` then work;
``torchvision.ops.nms`` and ``torchvision.io`` decoding do not (we use our own NMS and PIL).

Nothing is done when a matching torchvision build already provides the operators.
"""

from __future__ import annotations

import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARY: torch.library.Library | None = None


def _has_nms() -> bool:
    try:
        return hasattr(torch.ops.torchvision, "nms")
    except (RuntimeError, AttributeError):
        return False


def ensure_torchvision_importable() -> None:
    """Register the torchvision NMS schemas when the installed torch lacks them (idempotent)."""
    global _LIBRARY
    if _LIBRARY is not None or _has_nms():
        return
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)


ensure_torchvision_importable()
