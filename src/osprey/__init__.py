"""Osprey: pixel-level region understanding with a multimodal LLM.

The front door::

    import osprey
    model, tokenizer, _ = osprey.load_model("bundled")
    predictor = osprey.RegionPredictor(model, tokenizer)
    predictor.describe(predictor.encode("photo.jpg"), masks, "short")  # masks: (R, H, W)

``import osprey`` is light: it loads neither gradio, deepspeed, segment_anything nor the training
code, and not even the model or inference code until one of the names above is first used (a
module ``__getattr__``). The first import makes torchvision importable beside the CPU torch build
(see ``osprey._torchvision_compat``), so it must happen before transformers/timm are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from osprey import _library_noise, _torchvision_compat  # noqa: F401  (side effect: torchvision op schemas)

_library_noise.install()  # two known, harmless third-party log lines (see the module)

if TYPE_CHECKING:
    from osprey.config import OspreyConfig
    from osprey.inference.predictor import Query, RegionPredictor
    from osprey.model.loading import load_model

__version__ = "0.1.0"
__all__ = ["OspreyConfig", "Query", "RegionPredictor", "load_model"]


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use (then it is a plain attribute)."""
    if name == "load_model":
        from osprey.model.loading import load_model as value
    elif name == "RegionPredictor":
        from osprey.inference.predictor import RegionPredictor as value
    elif name == "Query":
        from osprey.inference.predictor import Query as value
    elif name == "OspreyConfig":
        from osprey.config import OspreyConfig as value
    else:
        raise AttributeError(f"module 'osprey' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
