"""Osprey: pixel-level region understanding with a multimodal LLM.

``import osprey`` is light: it loads neither gradio, deepspeed, segment_anything nor the training
code. The first import makes torchvision importable beside the CPU torch build (see
``osprey._torchvision_compat``), so it must happen before transformers/timm are imported.
"""

from osprey import _torchvision_compat  # noqa: F401  (side effect: torchvision op schemas)

__version__ = "0.1.0"
