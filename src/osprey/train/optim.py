"""The optimizer and its learning-rate schedule: AdamW with per-module learning rates, and a linear
warm-up followed by a cosine decay to ``lr * min_lr_ratio``."""

from __future__ import annotations

import math

import torch
from torch import nn

from osprey.train.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, one group per learning rate: ``cfg.lr``, or that of the
    last ``lr_overrides`` key the parameter's name starts with (``mask_extractor``) or contains
    followed by ``_`` (``lora`` matches every ``lora_A``/``lora_B`` weight)."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.lr
        for key, value in cfg.lr_overrides.items():
            if name.startswith(key + ".") or f"{key}_" in name:
                lr = float(value)
        groups.setdefault(lr, []).append(p)
    if not groups:
        raise ValueError(f"stage {cfg.stage} leaves no trainable parameter")
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr} for lr, ps in groups.items()], weight_decay=cfg.weight_decay
    )


def cosine_with_warmup(
    optimizer: torch.optim.Optimizer, total: int, warmup: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Factor (step + 1) / warmup for the first ``warmup`` steps, then a half cosine from 1 down to
    ``min_ratio`` at step ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
