"""Image-level projector: vision token width -> LLM width (LLaVA's ``mlp2x_gelu``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from osprey.config import ProjectorConfig


def build_projector(config: ProjectorConfig, in_dim: int, out_dim: int) -> nn.Module:
    """``mlp2x_gelu`` = Sequential(Linear, GELU, Linear): keys ``0.*`` and ``2.*`` as in Osprey."""
    if config.kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    if config.kind == "linear":
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    raise ValueError(f"unknown projector kind {config.kind!r}; expected 'mlp2x_gelu' or 'linear'")


def scale_to_norm(tokens: torch.Tensor, norm: float | None) -> torch.Tensor:
    """Each row of ``tokens`` rescaled to L2 norm ``norm`` (computed in float32); None: unchanged.

    An all-zero row (an empty mask's token, the zero-regions ablation) stays zero.
    """
    if norm is None:
        return tokens
    return (F.normalize(tokens.float(), dim=-1, eps=1e-6) * norm).to(tokens.dtype)
