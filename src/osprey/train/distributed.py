"""Sharded data parallel for the training loop: FSDP2 (``torch.distributed.fsdp.fully_shard``).

``sharding: fsdp`` in the training YAML (or an accelerate config of type FSDP) shards the model's
parameters, gradients and optimizer state over the processes instead of replicating them (DDP).
The loop does the wrapping itself, because accelerate 1.15 cannot drive FSDP on the CPU: its
``AcceleratorState`` switches to ``DistributedType.FSDP`` only for GPU-like device types, so with
``Accelerator(cpu=True)`` the type stays ``MULTI_CPU`` and ``prepare()`` wraps the model in DDP (the
FSDP plugin is silently ignored), and with ``cpu=False`` on a machine without CUDA the state is
``DistributedType.NO`` with one process (docs/training.md, "Sharding"). One code path on CPU and GPU.

Wrapping (:func:`shard_units`): every decoder layer of the LLM, the vision tower, the projector,
the mask extractor, the input embeddings and ``lm_head`` (unless tied: then both stay in the root) are each an FSDP
unit: its parameters are all-gathered for its own forward and backward only, then freed, so a
process holds its shards plus one gathered unit at a time. Each of them is called as a module
(``__call__``), which is where FSDP's hooks sit. What is left (the final norm) is the root unit.

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


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Shard ``model`` in place over every process (FSDP2, full shard); returns it. Call before the
    optimizer is built: ``fully_shard`` replaces the parameters by sharded ``DTensor`` parameters."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    ensure_process_group(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules :func:`shard_model` makes FSDP units (before the root), innermost first."""
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"sharding: fsdp found no decoder layer in {type(model.language_model).__name__}")
    llm = model.language_model
    embed, head = llm.get_input_embeddings(), llm.get_output_embeddings()
    units = [*layers, model.vision_encoder, model.projector, model.mask_extractor]
    if head is None or head.weight is not embed.weight:  # tied: one parameter used by both, left to the root
        units += [m for m in (embed, head) if m is not None]
    return [u for u in units if any(True for _ in u.parameters())]


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
