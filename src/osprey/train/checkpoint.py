"""Training checkpoints: trainable weights, optimizer, scheduler, RNG and data position, atomically.

A checkpoint is a folder ``checkpoint-0000123`` holding ``trainable.safetensors``, ``optimizer.pt``,
``scheduler.pt``, ``rng.pt``, ``state.json`` and the resolved ``config.yaml``. It is written under a
hidden temporary name and renamed in one ``os.replace`` once every file is flushed, so a run killed
at any moment leaves either a complete checkpoint or none: :func:`latest_checkpoint` never sees a
half-written one.

Weights and optimizer state go through torch's distributed state-dict API
(``torch.distributed.checkpoint.state_dict``), never the module's own parameters: for a plain or
DDP model it is the parameters themselves, for an FSDP-sharded one it gathers the full tensors onto
rank 0 (every process must call :func:`gather_trainable` and :func:`gather_optimizer`: they are
collectives). The optimizer state is keyed by parameter name, not position, so it loads into any
layout (1 process, DDP, FSDP over any number of processes). ``rng.pt`` holds rank 0's RNG state and
every rank's (``ranks``): a resumed run with the same process count gets its own back.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

_NAME_RE = re.compile(r"^checkpoint-(\d+)$")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _options(**kw: Any) -> StateDictOptions:
    """Full (unsharded) state; gathered onto rank 0's CPU when processes run together."""
    return StateDictOptions(full_state_dict=True, cpu_offload=_distributed(), **kw)


def _trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]  # tied weights once


def gather_trainable(model: nn.Module) -> dict[str, torch.Tensor]:
    """Named trainable parameters, full and detached on CPU (on rank 0; other ranks: ``{}`` for a
    sharded model). A collective for an FSDP model: call it on every process."""
    full = get_model_state_dict(model, options=_options(ignore_frozen_params=True))
    if not full:
        return {}
    return {n: full[n].detach().cpu().contiguous() for n in _trainable_names(model)}


def gather_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state keyed by parameter name, full (on rank 0). A collective for FSDP."""
    return get_optimizer_state_dict(model, optimizer, options=_options())


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng() -> dict[str, Any]:
    """Rank 0's RNG state, plus every rank's under ``ranks`` when processes run together (a collective)."""
    state = rng_state()
    if _distributed() and dist.get_world_size() > 1:
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, state)
        state = {**ranks[0], "ranks": ranks}
    return state


def set_rng_state(state: dict[str, Any], rank: int = 0) -> None:
    """Restore ``rank``'s RNG state (rank 0's when the checkpoint has no per-rank states)."""
    ranks = state.get("ranks")
    if ranks and rank < len(ranks):
        state = ranks[rank]
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    for f in path.iterdir():
        with f.open("rb") as handle:
            os.fsync(handle.fileno())


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler: Any,
    rng: dict[str, Any],
    state: dict[str, Any],
    config_yaml: str,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically; keep the newest ``keep`` checkpoints.
    ``weights``, ``optimizer_state`` and ``rng``: :func:`gather_trainable`, :func:`gather_optimizer`
    and :func:`gather_rng` (called on every process; rank 0 alone writes)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step:07d}"
    tmp = root / f".tmp-checkpoint-{step:07d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(weights, str(tmp / "trainable.safetensors"), metadata={"format": "pt"})
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2), encoding="utf-8")
    (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are never listed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME_RE.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_NAME_RE.match(p.name).group(1)))


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path, *, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, rank: int = 0
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG from ``path``; return its ``state.json``.
    Every process calls it (each reads the full files; a sharded model keeps its own shard)."""
    path = Path(path)
    weights = load_file(str(path / "trainable.safetensors"))
    expected = set(_trainable_names(model))
    if set(weights) != expected:
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise ValueError(
            f"checkpoint {str(path)!r} does not match this run's trainable parameters: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    full = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=full)
    optim = torch.load(path / "optimizer.pt", weights_only=True)
    if any(isinstance(k, int) for k in optim.get("state", {})):  # a checkpoint written before names
        optimizer.load_state_dict(optim)
    else:
        set_optimizer_state_dict(model, optimizer, optim, options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False), rank)
    return json.loads((path / "state.json").read_text(encoding="utf-8"))
