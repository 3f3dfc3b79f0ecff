"""Weight-only quantization for inference (``--quantize int8|int4``), with torchao.

What is quantized: every ``nn.Linear`` of the LLM (attention, MLP and ``lm_head``, unless the head
is tied to the token embeddings) and of the projector. What is not: the mask extractor (float32, as
the official model keeps it: the region tokens the answers depend on), the vision tower, the token
embeddings, a tied ``lm_head`` and the norms. Activations stay in the model's precision (on the CPU's
int8 decoding path they are rounded to bfloat16 for the kernel); only the stored weights shrink (int8: one byte per weight plus one
scale per output row; int4: half a byte plus one scale and zero point per group of 128).

* ``int8``: torchao ``Int8WeightOnlyConfig`` (per-row symmetric), on the CPU and on CUDA. On the CPU
  the LLM's Linears then become :class:`~osprey.model.quantize_cpu.CpuInt8Linear` (the same int8
  values and scales; torch's ``_weight_int8pack_mm`` kernel when decoding, where torchao's CPU path
  dequantizes the whole weight every call).
* ``int4``: torchao ``Int4WeightOnlyConfig`` (groups of 128, tinygemm tile packing), CUDA only and
  in bfloat16. On the CPU it is refused with the reason: torchao 0.18's int4 weight-only kernels are
  CUDA kernels (tinygemm tile packing, or the ``mslk`` package for the plain layout), and its CPU
  path (``IntxWeightOnlyConfig`` with ``torch.int4``) stores each 4-bit value in a whole byte, no
  smaller than int8.

bitsandbytes is not used: torchao covers both devices with one code path, and bitsandbytes needs CUDA.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from osprey.model.quantize_cpu import CpuInt8Linear

QUANTIZE_CHOICES = ("none", "int8", "int4")
QUANTIZED_MODULES = ("language_model", "projector")  # the mask extractor stays float32
INT4_GROUP = 128

INT4_ON_CPU = (
    "--quantize int4 runs on a CUDA GPU only: torchao 0.18's int4 weight-only kernels are CUDA kernels "
    "(tinygemm tile packing, or the mslk package for its plain layout) and its CPU int4 path stores each "
    "4-bit weight in a whole byte (no smaller than int8); on the CPU use --quantize int8"
)


def check_quantize(mode: str | None, device: torch.device) -> str | None:
    """``mode`` validated for ``device``: None for no quantization, else ``"int8"``/``"int4"``."""
    if mode is None or mode == "none":
        return None
    if mode not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize={mode!r}; expected one of {', '.join(QUANTIZE_CHOICES)}")
    if mode == "int4" and device.type != "cuda":
        raise ValueError(INT4_ON_CPU)
    return mode


def quantized_linears(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every Linear that ``--quantize`` stores in low precision (an ``nn.Linear``, or
    the :class:`CpuInt8Linear` that replaced it). Not a ``lm_head`` tied to the token embeddings
    (SmolLM2, the bundled model): the float table stays for the embedding lookup, so an int8 copy
    of it would add memory, not save it, and the vocabulary head is where the answers are chosen."""
    llm = model.language_model
    head, embed = llm.get_output_embeddings(), llm.get_input_embeddings()
    tied = head is not None and getattr(head, "weight", None) is getattr(embed, "weight", False)
    for top in QUANTIZED_MODULES:
        for name, module in getattr(model, top).named_modules():
            if tied and module is head:
                continue
            if isinstance(module, (nn.Linear, CpuInt8Linear)):
                yield f"{top}.{name}" if name else top, module


def quantize_model(model: nn.Module, mode: str, *, cpu_kernel: bool = True) -> nn.Module:
    """Quantize ``model``'s LLM and projector Linear weights in place (``mode``: int8 or int4; see
    the module docstring); returns the model. Call it on a model already on its device and dtype.
    ``cpu_kernel=False`` keeps torchao's own int8 Linear on the CPU too (bench/quantize.py compares)."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    device = next(model.parameters()).device
    check_quantize(mode, device)
    targets = {id(m) for _, m in quantized_linears(model)}
    if mode == "int4":
        if model.language_model.dtype != torch.bfloat16:
            raise ValueError("--quantize int4 needs bfloat16 activations (tinygemm); add --dtype bfloat16")
        config = Int4WeightOnlyConfig(group_size=INT4_GROUP, int4_packing_format="tile_packed_to_4d")
    else:
        config = Int8WeightOnlyConfig()
    with torch.no_grad():
        for _, module in quantized_linears(model):  # contiguous (out, in) weights, as torchao expects
            module.weight.data = module.weight.data.contiguous()
        quantize_(model, config, filter_fn=lambda module, _fqn: id(module) in targets)
        if mode == "int8" and device.type == "cpu" and cpu_kernel:
            use_cpu_int8_kernel(model)
    model.quantization = mode
    return model


def use_cpu_int8_kernel(model: nn.Module) -> int:
    """Replace the LLM's torchao int8 Linears by :class:`CpuInt8Linear` (same int8 values and scales,
    torch's CPU int8 kernel when decoding); returns how many. The projector keeps torchao's
    ``Int8Tensor`` weight: it runs once per image, and the model reads its weight's dtype."""
    replaced = 0
    targets = {id(m) for _, m in quantized_linears(model)}
    for name, module in list(model.language_model.named_modules()):
        if id(module) in targets and isinstance(module, nn.Linear) and type(module.weight).__name__ == "Int8Tensor":
            model.language_model.set_submodule(name, CpuInt8Linear.from_torchao(module))
            replaced += 1
    return replaced


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a (possibly quantized) tensor stores: a torchao tensor's inner data, scales and zero points."""
    flatten = getattr(type(tensor), "__tensor_flatten__", None)
    if flatten is not None and type(tensor) not in (torch.Tensor, nn.Parameter):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, n)) for n in names)
    return tensor.numel() * tensor.element_size()


def linear_weight_bytes(model: nn.Module) -> int:
    """Bytes of the quantizable Linear layers' weights and biases (scales counted): every parameter
    and buffer each such module holds itself."""
    total = 0
    for _, module in quantized_linears(model):
        own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        total += sum(tensor_bytes(t) for t in own)
    return total


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer, once each (tied weights once), quantized or not."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor_bytes(tensor)
    return total
