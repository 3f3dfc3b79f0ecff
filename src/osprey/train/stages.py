"""What each training stage trains: one table, applied in one loud function.

Osprey's recipe (osprey-official.md §4): stage 1 aligns image features to the LLM (projector only),
stage 2 aligns mask features (mask extractor only), stage 3 tunes end to end (everything but the
vision tower). ``train_vision`` adds the vision tower to any stage: presets whose tower has no
pretrained weights (the small preset: no CLIP weights can be fetched here) train it jointly
instead of freezing a random tower (docs/training.md says why and what it costs).
With ``lora`` in stage 3 the LLM's base weights stay frozen and peft LoRA adapters train instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from osprey.model.osprey import OspreyModel
from osprey.train.config import LoraConfig, TrainConfig

MODULES = ("vision_encoder", "projector", "mask_extractor", "language_model")


@dataclass(frozen=True)
class Stage:
    name: str
    trains: tuple[str, ...]  # top-level modules of OspreyModel whose parameters train
    purpose: str


STAGES: dict[int, Stage] = {
    1: Stage("image-text alignment", ("projector",), "image tokens -> LLM space (LLaVA-style pretraining)"),
    2: Stage("mask-text alignment", ("mask_extractor",), "region tokens -> LLM space"),
    3: Stage("end-to-end", ("projector", "mask_extractor", "language_model"), "instruction tuning"),
}


def get_stage(number: int) -> Stage:
    try:
        return STAGES[number]
    except KeyError:
        raise ValueError(f"stage {number!r}; expected one of {sorted(STAGES)}") from None


def apply_stage(model: OspreyModel, cfg: TrainConfig, *, log: Callable[[str], Any] = print) -> tuple[str, ...]:
    """Make ``model`` what stage ``cfg.stage`` trains, and say so (``log``: the stage's modules and
    the per-module table of trainable and frozen parameters). Returns the trained modules.

    Frozen modules are stored in ``cfg.frozen_dtype`` (a LoRA LLM's base counts as frozen); LoRA
    adapters are added unless ``continue_adapters`` trains the model's own; trainable weights are
    float32 whatever the storage of the rest; gradient checkpointing goes on the LLM.
    """
    stage = get_stage(cfg.stage)
    lora = cfg.lora is not None
    trains = modules_to_train(stage, train_vision=cfg.train_vision, lora=lora)
    if cfg.frozen_dtype == "bfloat16":
        for name in ("vision_encoder", "projector", "language_model"):
            if name not in trains or (name == "language_model" and lora):
                getattr(model, name).to(torch.bfloat16)
    if lora and not cfg.continue_adapters:
        apply_lora(model, cfg.lora)
    set_trainable(model, trains, lora=lora)
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # trainable weights (incl. LoRA on a bf16 base) stay float32
    if cfg.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    log(f"stage {cfg.stage} ({stage.name}): training {', '.join(trains)}")
    log(format_parameter_table(parameter_table(model)))
    return trains


def apply_lora(model: OspreyModel, lora: LoraConfig) -> None:
    """Wrap the LLM with peft LoRA adapters."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        bias="none",
    )
    model.language_model = get_peft_model(model.language_model, config)


def modules_to_train(stage: Stage, *, train_vision: bool = False, lora: bool = False) -> tuple[str, ...]:
    trains = list(stage.trains)
    if train_vision and "vision_encoder" not in trains:
        trains.insert(0, "vision_encoder")
    if lora and "language_model" not in trains:
        trains.append("language_model")
    return tuple(trains)


def set_trainable(model: OspreyModel, trains: Sequence[str], *, lora: bool = False) -> None:
    """Freeze everything, then unfreeze the modules in ``trains`` (only the adapters of a LoRA LLM)."""
    unknown = [m for m in trains if m not in MODULES]
    if unknown:
        raise ValueError(f"unknown modules {unknown}; expected some of {MODULES}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in trains:
        module: nn.Module = getattr(model, name)
        for pname, p in module.named_parameters():
            if name == "language_model" and lora:
                p.requires_grad_("lora_" in pname)
            else:
                p.requires_grad_(True)


def parameter_table(model: OspreyModel) -> list[tuple[str, int, int]]:
    """(module, trainable, frozen) parameter counts per top-level module."""
    rows = []
    for name in MODULES:
        module = getattr(model, name)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
        rows.append((name, trainable, frozen))
    return rows


def format_parameter_table(rows: Sequence[tuple[str, int, int]]) -> str:
    lines = ["| module | trainable | frozen |", "|---|---:|---:|"]
    for name, trainable, frozen in rows:
        lines.append(f"| {name} | {trainable:,} | {frozen:,} |")
    total_t, total_f = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines.append(f"| **total** | **{total_t:,}** | **{total_f:,}** |")
    return "\n".join(lines)
