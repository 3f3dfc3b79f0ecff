"""Where a run starts from, as the official recipe starts it.

Stage 2 of the official recipe starts from pieces (osprey-official.md §2.4): Vicuna's HF folder for
the LLM (here: the preset's ``model_overrides`` ``language_model.source: pretrained``), the open_clip
``open_clip_pytorch_model.bin`` for the tower (``vision_weights``), the stage-1 ``mm_projector.bin``
for the projector (``projector_weights``, official key names), and a mask extractor that HF's
``_init_weights`` initialises because Vicuna lacks its keys (``mask_extractor_init: hf``).

The official scripts train with ``--version v1`` ("curious user") while every official eval and
demo prompts with ``osprey_v1`` ("curious human"): :func:`training_template` reproduces that pairing
for the 7B preset and official folders, and leaves every other model on its own template.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from osprey.model.osprey import OspreyModel
from osprey.model.weights import is_official_folder, load_projector_weights, open_clip_vision_state
from osprey.train.config import TrainConfig

log = logging.getLogger(__name__)

HF_INIT_STD = 0.02  # transformers' LlamaConfig.initializer_range (Vicuna-7B's config.json)


def hf_init_(module: nn.Module, std: float = HF_INIT_STD) -> None:
    """HF ``PreTrainedModel._init_weights`` for LLaMA: every Linear weight N(0, std), its bias zero
    (the official mask extractor holds Linears only)."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what}: missing {missing[:10]}, unexpected {unexpected[:10]}")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(f"{what}: shape mismatch for {wrong[:10]}")
    with torch.no_grad():
        for key, value in state.items():
            expected[key].copy_(value.to(expected[key].dtype))


def assemble_start(model: OspreyModel, cfg: TrainConfig, *, is_preset: bool) -> None:
    """Apply ``vision_weights``, ``projector_weights`` and ``mask_extractor_init`` (presets only:
    a saved model already carries trained modules)."""
    asked = [k for k in ("vision_weights", "projector_weights") if getattr(cfg, k)]
    if cfg.mask_extractor_init != "torch":
        asked.append("mask_extractor_init")
    if asked and not is_preset:
        raise ValueError(f"{', '.join(asked)} assemble a fresh preset; {cfg.model!r} is a saved model")
    if cfg.vision_weights:
        state = {k.removeprefix("vision_encoder."): v for k, v in open_clip_vision_state(Path(cfg.vision_weights)).items()}
        _load_into(model.vision_encoder, state, f"vision_weights {cfg.vision_weights}")
    if cfg.projector_weights:
        _load_into(model.projector, load_projector_weights(Path(cfg.projector_weights)),
                   f"projector_weights {cfg.projector_weights}")
    if cfg.mask_extractor_init == "hf":
        hf_init_(model.mask_extractor)


def is_official_recipe_model(cfg: TrainConfig, model: OspreyModel) -> bool:
    """The 7B preset (or a model trained here from it) or an official checkpoint folder."""
    folder = Path(str(cfg.model))
    official = folder.is_dir() and (folder / "config.json").is_file() and is_official_folder(folder)
    return official or model.config.name.startswith("osprey_7b")


def training_template(cfg: TrainConfig, model: OspreyModel) -> str:
    """``cfg.template``; else ``v1`` as the official trains, for the 7B preset and official folders;
    else the model's own template."""
    if cfg.template is not None:
        return cfg.template
    return "v1" if is_official_recipe_model(cfg, model) else model.config.template
