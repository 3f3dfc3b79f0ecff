"""Deterministic weights and inputs of the golden reference format (shared/golden/README.md).

A golden set is rebuilt from its JSON sidecar alone: every state-dict entry from the fixed-init rule
keyed by its name, feature maps and images from ``sin(a*i + b)`` specs, masks from shape specs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

NORM_SUFFIXES = ("norm.weight", "stem.1.weight", "downsample.0.weight")


def fixed_init(name: str, shape: Sequence[int]) -> np.ndarray:
    """value[i] = 0.02*sin(0.37*((i*i) mod 1000003) + phase(name)); +1 for norms, +0.1 for gamma."""
    n = int(np.prod(shape)) if len(shape) else 1
    i = np.arange(n, dtype=np.int64)
    k = ((i * i) % 1000003).astype(np.float64)
    phase = (sum(name.encode("utf-8")) % 997) / 97
    v = 0.02 * np.sin(0.37 * k + phase)
    if name.endswith(NORM_SUFFIXES):
        v = 1.0 + v
    elif name.endswith("gamma"):
        v = 0.1 + v
    return v.astype(np.float32).reshape(tuple(shape))


def fixed_init_tensor(name: str, shape: Sequence[int]) -> torch.Tensor:
    return torch.from_numpy(fixed_init(name, shape))


def sin_tensor(shape: Sequence[int], a: float, b: float) -> torch.Tensor:
    """value[flat row-major i] = sin(a*i + b), computed in float64, cast to float32."""
    n = int(np.prod(shape))
    values = np.sin(a * np.arange(n, dtype=np.float64) + b)
    return torch.from_numpy(values.astype(np.float32).reshape(tuple(shape)))


def fingerprint_matches(tensor: torch.Tensor, fingerprint: Mapping[str, Any]) -> bool:
    """True when the float32 bytes hash to the recorded sha256, or (another libm moved a rare value
    by one ulp) when sum and sum of squares agree to ~1e-9 of the tensor's scale."""
    data = tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
    if hashlib.sha256(data).hexdigest() == fingerprint.get("sha256_f32le"):
        return True
    values = tensor.detach().double()
    scale = max(1.0, abs(float(fingerprint["sumsq"])))
    return (abs(float(values.sum()) - fingerprint["sum"]) <= 1e-9 * scale
            and abs(float((values * values).sum()) - fingerprint["sumsq"]) <= 1e-9 * scale)


def build_mask(spec: Mapping[str, Any], height: int, width: int, built: Sequence[np.ndarray]) -> np.ndarray:
    """One (H, W) bool mask from a golden mask spec (ellipse, rect, union of earlier masks)."""
    y, x = np.mgrid[0:height, 0:width]
    kind = spec.get("type")
    if kind == "ellipse":
        cx, cy, rx, ry = (int(spec[k]) if float(spec[k]).is_integer() else float(spec[k]) for k in ("cx", "cy", "rx", "ry"))
        if all(isinstance(v, int) for v in (cx, cy, rx, ry)):
            # exact integer form of ((x-cx)/rx)^2 + ((y-cy)/ry)^2 <= 1
            return (ry * ry * (x - cx) ** 2 + rx * rx * (y - cy) ** 2) <= (rx * rx * ry * ry)
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    if kind == "rect":
        return (x >= spec["x0"]) & (x < spec["x1"]) & (y >= spec["y0"]) & (y < spec["y1"])
    if kind == "union":
        out = np.zeros((height, width), dtype=bool)
        for index in spec["of"]:
            if index >= len(built):
                raise ValueError(f"union refers to mask {index}, but only {len(built)} masks precede it")
            out |= built[index]
        return out
    raise ValueError(f"unknown golden mask type {kind!r}; expected ellipse, rect or union")


def build_masks(specs: Sequence[Mapping[str, Any]], height: int, width: int) -> torch.Tensor:
    """(Q, H, W) float32 0/1 masks from the specs, in order."""
    built: list[np.ndarray] = []
    for spec in specs:
        built.append(build_mask(spec, height, width, built))
    return torch.from_numpy(np.stack(built).astype(np.float32))
