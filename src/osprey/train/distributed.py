"""Sharded data parallel for the training loop: FSDP2 (``torch.distributed.fsdp.fully_shard``).

``sharding: fsdp`` in the training YAML (or an accelerate config of type FSDP) shards the model's
parameters, gradients and optimizer state over the processes instead of replicating them (DDP).
The loop does the wrapping itself, because accelerate 1.15 cannot drive FSDP on the CPU: its
``AcceleratorState`` switches to ``DistributedType.FSDP`` only for GPU-like device types, so with
``Accelerator(cpu=True)`` the type stays ``MULTI_CPU`` and ``prepare()`` wraps the model in DDP (the
FSDP plugin is silently ignored), and with ``cpu=False`` on a machine without CUDA the state is
``DistributedType.NO`` with one process (docs/training.md, "Sharding"). One code path on CPU and GPU.

Wrapping (:func:`shard_units`): every large Linear, Conv2d and Embedding is its own FSDP unit (the
LLM's projections, ``lm_head``, the token embeddings, the tower's ConvNeXt MLPs, ...), then each
decoder layer, the vision tower, the projector and the mask extractor: a unit's parameters are
all-gathered for its own forward and backward only, then freed, so a process holds its shards plus
about one gathered unit at a time (small units keep that transient small). What is left (the
final norm; tied embeddings) is the root unit.

FSDP's reduce-scatter averages gradients over the processes exactly as DDP's all-reduce does, so the
loop's loss scaling is the same for both, and 2 processes reproduce 1 process step for step
(tests/train/test_fsdp.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

SHARDINGS = ("none", "fsdp")

DEEPSPEED_UNSUPPORTED = (
    "DeepSpeed (ZeRO-2/3) is not supported by this training loop: its backward and optimizer step "
    "must go through the DeepSpeed engine, and ZeRO keeps optimizer state (ZeRO-2) and parameters "
    "(ZeRO-3) in partitions that torch's state-dict API, which writes these checkpoints, cannot read. "
    "Use `sharding: fsdp` (FSDP2 shards parameters, gradients and optimizer state, as ZeRO-3 does) "
    "with configs/accelerate/fsdp_gpu.yaml (docs/training.md, Sharding)"
)


def uses_fsdp(sharding: str, accelerator: Any) -> bool:
    """Whether this run shards with FSDP2: ``sharding: fsdp``, or an accelerate config of type FSDP."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise NotImplementedError(DEEPSPEED_UNSUPPORTED)
    return sharding == "fsdp" or accelerator.distributed_type == DistributedType.FSDP


def ensure_process_group(device: torch.device) -> None:
    """A one-process group when none is running (``fully_shard`` needs one; accelerate starts none for
    a single process), so a 1-process FSDP run is possible (the GPU round-trip check uses it)."""
    if dist.is_available() and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The LLM's transformer blocks (``LlamaDecoderLayer`` and kin), in order."""
    return [m for m in model.language_model.modules() if type(m).__name__.endswith("DecoderLayer")]


def shard_model(model: nn.Module, device: torch.device, *, min_leaf_bytes: int | None = None) -> nn.Module:
    """Shard ``model`` in place over every process (FSDP2, full shard; units: :func:`shard_units`);
    returns it. Call before the optimizer is built: ``fully_shard`` replaces the parameters by
    sharded ``DTensor`` parameters."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    ensure_process_group(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for unit in shard_units(model, min_leaf_bytes=min_leaf_bytes):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


MIN_LEAF_UNIT_BYTES = 4 * 2**20  # a Linear/Conv/Embedding this big (4 MiB) is its own FSDP unit
LEAF_TYPES = (nn.Linear, nn.Conv2d, nn.Embedding)


def shard_units(model: nn.Module, *, min_leaf_bytes: int | None = None) -> list[nn.Module]:
    """The modules :func:`shard_model` makes FSDP units (before the root), innermost first.

    A unit's parameters are all-gathered for its forward (and backward) and then freed; while it
    is gathered a process holds, on top of its shards, the all-gather buffer *and* the unsharded
    copy FSDP2 copies out of it (2x the unit, plus the shard copy it sends: measured, see
    bench/train_memory.py). So units are kept small: every ``nn.Linear``, ``nn.Conv2d`` and
    ``nn.Embedding`` of at least ``min_leaf_bytes`` (default :data:`MIN_LEAF_UNIT_BYTES`) is one
    (in the tower's ConvNeXt blocks, the LLM's attention and MLP projections, a LoRA layer's frozen
    ``base_layer``, the projector, the mask extractor, the token embeddings and ``lm_head``); then each decoder layer
    (its norms and LoRA factors), the vision tower, the projector and the mask extractor (their
    small leftovers: norms, layer scales, biases). Each is called as a module (``__call__``), which
    is where FSDP's hooks sit. A parameter used by two modules (tied embeddings) stays in the root.
    """
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"sharding: fsdp found no decoder layer in {type(model.language_model).__name__}")
    limit = MIN_LEAF_UNIT_BYTES if min_leaf_bytes is None else min_leaf_bytes
    users: dict[int, int] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            users[id(p)] = users.get(id(p), 0) + 1
    leaves = [
        m for m in model.modules()
        if isinstance(m, LEAF_TYPES) and all(users[id(p)] == 1 for p in m.parameters(recurse=False))
        and sum(p.numel() * p.element_size() for p in m.parameters(recurse=False)) >= limit
    ]  # fmt: skip
    units = [*leaves, *layers, model.vision_encoder, model.projector, model.mask_extractor]
    covered: set[int] = set()
    kept = []
    for unit in units:  # a unit holds the parameters no unit inside it holds; skip units left empty
        own = {id(p) for p in unit.parameters()} - covered
        if own:
            kept.append(unit)
            covered |= own
    return kept


def is_fsdp(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def no_gradient_sync(model: nn.Module) -> Iterator[None]:
    """Accumulate gradients locally (no all-reduce / reduce-scatter) inside the block: DDP's
    ``no_sync()``, FSDP2's ``set_requires_gradient_sync(False)``."""
    if is_fsdp(model):
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    elif hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    else:
        yield


def as_float(value: torch.Tensor) -> float:
    """A scalar that may be a ``DTensor`` (FSDP's gradient norm) as a Python float."""
    full = getattr(value, "full_tensor", None)
    return float(full() if full is not None else value)


def raw_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer under accelerate's ``AcceleratedOptimizer`` wrapper (if any)."""
    return getattr(optimizer, "optimizer", optimizer)
