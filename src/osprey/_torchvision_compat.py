"""The one place that makes torchvision importable beside the CPU build of torch.

PyPI's torchvision 0.28 wheel is linked against CUDA torch; beside the CPU wheel of torch 2.13 its
import fails with ``operator torchvision::nms does not exist`` while registering fake kernels.
transformers, timm, open_clip, peft, sentence-transformers and segment_anything all import
torchvision, so every one of them would fail. Defining the two missing operator schemas before
torchvision is first imported is enough: transforms, models and ``roi_align`` then work;
``torchvision.ops.nms`` and ``torchvision.io`` decoding do not (we use our own NMS and PIL).

Nothing is done when a matching torchvision build provides the operators (a CUDA torch with its
own torchvision, say): its native library is loaded first and, when that works, left to register
them itself (defining them here too would abort the process on the duplicate registration).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def _native_ops_load() -> bool:
    """Whether torchvision's own compiled operators load beside this torch (then they are loaded)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    folder = Path(next(iter(spec.submodule_search_locations)))
    libraries = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    if not libraries:
        return False
    try:
        torch.ops.load_library(str(libraries[0]))
    except (OSError, RuntimeError):
        return False
    return _has_nms()


def ensure_torchvision_importable() -> None:
    """Register the torchvision NMS schemas when the installed torch lacks them (idempotent)."""
    global _LIBRARY
    if _LIBRARY is not None or _has_nms() or _native_ops_load():
        return
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _LIBRARY.define(schema)


ensure_torchvision_importable()
