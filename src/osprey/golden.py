"""Deterministic weights and inputs of the golden reference format (shared/golden/README.md).

A golden set is rebuilt from its JSON sidecar alone: every state-dict entry from the fixed-init rule
keyed by its name, feature maps and images from ``sin(a*i + b)`` specs, masks from shape specs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    raise UnknownMaskType(kind)


KNOWN_MASK_TYPES = ("ellipse", "rect", "union")


class UnknownMaskType(ValueError):
    """A mask spec whose shape type this tool cannot rebuild (the stored tensor is still the input)."""

    def __init__(self, kind: Any) -> None:
        super().__init__(f"unknown golden mask type {kind!r}; expected {', '.join(KNOWN_MASK_TYPES)}")
        self.kind = kind


def unknown_mask_types(specs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The shape types in ``specs`` that :func:`build_mask` cannot rebuild, in order, once each."""
    return list(dict.fromkeys(str(s.get("type")) for s in specs if s.get("type") not in KNOWN_MASK_TYPES))


def build_masks(specs: Sequence[Mapping[str, Any]], height: int, width: int) -> torch.Tensor:
    """(Q, H, W) float32 0/1 masks from the specs, in order; :class:`UnknownMaskType` for a type
    other than ellipse, rect or union."""
    built: list[np.ndarray] = []
    for spec in specs:
        built.append(build_mask(spec, height, width, built))
    return torch.from_numpy(np.stack(built).astype(np.float32))


# -- greedy decoding ("Greedy tokens", shared/golden/README.md §3) ------------------------------
GREEDY_TAU = {"fp32": 1e-3}  # every other regime (official, official_2nd: bf16): 0.02
GREEDY_TAU_REDUCED = 0.02


def greedy_tau(regime: str, result: Mapping[str, Any]) -> float:
    """The recorded ``tau`` of a regime, else the README's: 1e-3 for fp32, 0.02 for official*."""
    if result.get("tau") is not None:
        return float(result["tau"])
    return GREEDY_TAU.get(regime, GREEDY_TAU_REDUCED)


def tied_ids(step_top5: Mapping[str, Any], margin: float, tau: float) -> list[int] | None:
    """None at a step whose recorded top-1 minus top-2 margin is >= tau (only the recorded id is
    acceptable); else every recorded top-5 id whose recorded value lies within tau of the top-1
    value (a tie can hold more than two ids: in bf16 the 2nd and 3rd values can be equal)."""
    if not margin < tau:
        return None
    ids, values = list(step_top5["ids"]), [float(v) for v in step_top5["values"]]
    return [i for i, v in zip(ids, values, strict=True) if values[0] - v <= tau]


@dataclass(frozen=True)
class GreedyVerdict:
    passed: bool
    compared: int  # leading steps decoded from the same context (their step scores compare)
    note: str


def judge_greedy(generated: Sequence[int], result: Mapping[str, Any], tau: float) -> GreedyVerdict:
    """The README's rule, step by step: an exact match at a clear step; at a tie step any tied id
    is accepted and the comparison stops there (later steps may follow another token)."""
    recorded = list(result["generated_ids"])
    margins = [float(m) for m in result["step_top1_minus_top2"]]
    top5 = list(result.get("step_top5", []))
    for step, theirs in enumerate(recorded):
        if step >= len(generated):
            return GreedyVerdict(False, step, f"ours stopped after {step} of {len(recorded)} ids")
        ours = int(generated[step])
        tie = tied_ids(top5[step], margins[step], tau) if step < len(top5) else None
        if tie is not None:
            ok = ours in tie or ours == theirs
            how = "same id" if ours == theirs else f"ours {ours} is among the tied ids {tie}"
            return GreedyVerdict(ok, step + 1, f"{step} exact, step {step} a tie (margin {margins[step]:.3g}): "
                                 + (how if ok else f"ours {ours} not among the tied ids {tie}") + "; later steps not compared")
        if ours != theirs:
            return GreedyVerdict(False, step, f"step {step}: ours {ours} vs recorded {theirs} (margin {margins[step]:.3g})")
    return GreedyVerdict(True, len(recorded), f"{len(recorded)}/{len(recorded)} identical")


# -- inputs of a set ---------------------------------------------------------------------------
def stored_masks(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], default_key: str
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """(input masks, masks rebuilt from ``input_spec`` or None, note). The stored tensor (named by
    ``input_spec.stored_input_tensor``, else ``default_key``) is the input; the rebuild is a
    cross-check, made only when every shape type is one :func:`build_mask` knows. Without a stored
    tensor the rebuild is the input (None when it cannot be made)."""
    spec = meta.get("input_spec", {})
    key = str(spec.get("stored_input_tensor") or default_key)
    stored = tensors.get(key)
    specs = list(spec.get("masks", []))
    unknown = unknown_mask_types(specs)
    if unknown or not specs:
        why = f"mask type(s) {', '.join(map(repr, unknown))} unknown to this tool" if unknown else "no mask specs"
        return stored, None, f"not rebuilt: {why}" + ("; the stored tensor is the input" if stored is not None
                                                      else f"; no stored {key!r} tensor either")
    rebuilt = build_masks(specs, int(spec["H"]), int(spec["W"]))
    return (rebuilt if stored is None else stored), rebuilt, ""


def expand_official_ids(recorded: Sequence[int], *, image_slot: int, num_image_tokens: int, vocab_size: int,
                        mask_slot: int, pos_slot: int, image_placeholder: int = -200) -> list[int]:
    """Official unexpanded ids (``-200`` for the image, ``<mask>`` = vocab, ``<pos>`` = vocab + 1)
    as our splice reads them: the image placeholder becomes ``num_image_tokens`` image slots."""
    renamed = {vocab_size: mask_slot, vocab_size + 1: pos_slot}
    out: list[int] = []
    for token in recorded:
        if token == image_placeholder:
            out += [image_slot] * num_image_tokens
        else:
            out.append(renamed.get(int(token), int(token)))
    return out
