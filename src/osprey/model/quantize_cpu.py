"""A fast int8 weight-only Linear for the CPU: torch's ``_weight_int8pack_mm`` kernel at decode time.

torchao 0.18's ``Int8WeightOnlyConfig`` on the CPU dequantizes the whole weight to float on every
call and then multiplies: at 7B widths that made decoding about 11x slower than float32
(bench/quantize.py). torch ships a CPU kernel, ``aten._weight_int8pack_mm(x, w_int8, scales)``,
that multiplies a few activation rows by an (out, in) int8 weight with one scale per output
channel, without materialising the float weight. Measured here (one thread, 4096x4096 and
11008x4096 layers, one row): 2.3-3.8x faster than the float32 matmul with bfloat16 activations,
but 4-6x *slower* with float32 activations (its float32 path is not vectorised), and for many rows
(a prompt) it scales linearly with the rows, so at 64 rows it is slower than float32 (docs in
README.md, "Quantized inference").

:class:`CpuInt8Linear` therefore holds torchao's own quantization (the same int8 values and
per-output-channel symmetric scales: it is built from torchao's ``Int8Tensor``, so the stored
numbers are identical) and picks the kernel per call:

* up to :data:`FAST_ROWS` rows (decoding): activations rounded to bfloat16, ``_weight_int8pack_mm``
  with bfloat16 scales, the result cast back to the activations' dtype. This adds bfloat16
  rounding of the inputs, scales and outputs (relative 2**-9) to the int8 weight error;
* more rows (a prompt's prefill), or another device: the int8 weight converted to the activations'
  dtype, one matmul, then the scales: the computation torchao's ``Int8Tensor`` does.
"""

from __future__ import annotations

import torch
from torch import nn

FAST_ROWS = 16  # rows up to which the int8 kernel beats dequantize + matmul (bench/quantize.py)


class CpuInt8Linear(nn.Module):
    """``y = x @ (qweight * scale).T + bias`` with an int8 (out, in) weight and a float scale per row."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if qweight.dtype != torch.int8 or qweight.dim() != 2:
            raise ValueError(f"qweight {qweight.dtype} {tuple(qweight.shape)}; expected a 2-D torch.int8 tensor")
        if scale.shape != (qweight.shape[0],):
            raise ValueError(f"scale shape {tuple(scale.shape)}; expected ({qweight.shape[0]},), one per output row")
        self.in_features, self.out_features = int(qweight.shape[1]), int(qweight.shape[0])
        self.register_buffer("qweight", qweight.contiguous())  # (out, in) int8
        self.register_buffer("scale", scale.float().contiguous())  # (out,) float32
        self.register_buffer("scale_bf16", scale.to(torch.bfloat16).contiguous(), persistent=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_torchao(cls, linear: nn.Linear) -> CpuInt8Linear:
        """The same quantized numbers as ``linear``, whose weight torchao's ``Int8WeightOnlyConfig``
        made an ``Int8Tensor`` (per-row symmetric: zero point 0, block (1, in))."""
        weight = linear.weight
        names = getattr(weight, "__tensor_flatten__", lambda: ([], None))()[0]
        if type(weight).__name__ != "Int8Tensor" or "qdata" not in names:
            raise ValueError(f"{type(weight).__name__} weight; expected torchao's Int8Tensor (Int8WeightOnlyConfig)")
        if list(weight.block_size) != [1, weight.shape[1]]:
            raise ValueError(f"block size {list(weight.block_size)}; expected per-row [1, {weight.shape[1]}]")
        zero = getattr(weight, "zero_point", None)
        if zero is not None and bool(zero.any()):
            raise ValueError("a non-zero int8 zero point; expected symmetric quantization (zero point 0)")
        return cls(weight.qdata, weight.scale.reshape(-1), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        rows = x.numel() // self.in_features
        flat = x.reshape(rows, self.in_features)  # (M, in)
        if x.device.type == "cpu" and 0 < rows <= FAST_ROWS:
            y = torch.ops.aten._weight_int8pack_mm(flat.to(torch.bfloat16), self.qweight, self.scale_bf16).to(x.dtype)
        else:  # torchao's weight-only computation: (x @ int8 weight as float) * per-row scale
            y = torch.mm(flat, self.qweight.t().to(x.dtype)) * self.scale.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-row, bias={self.bias is not None}"
