"""--quantize: torchao weight-only int8 of the LLM's and the projector's Linear layers."""

from __future__ import annotations

import argparse

import pytest
import torch

from osprey.flags import QUANTIZE_CHOICES, add_model_flags
from osprey.model import quantize as q
from osprey.model.loading import load_model

pytest.importorskip("torchao")


def test_int8_quantizes_llm_and_projector_linears_only_and_shrinks_them():
    ref, _, _ = load_model("tiny", seed=3)
    model, _, _ = load_model("tiny", seed=3, quantize="int8")
    names = dict(q.quantized_linears(model))
    assert "language_model.lm_head" in names and any(n.startswith("projector") for n in names)
    for module in names.values():
        assert type(module.weight).__name__ == "Int8Tensor"
    for p in model.mask_extractor.parameters():  # the mask extractor stays float32, unquantized
        assert type(p) is torch.nn.Parameter and p.dtype == torch.float32
    ratio = q.linear_weight_bytes(model) / q.linear_weight_bytes(ref)
    assert 0.25 <= ratio <= 0.35  # one byte a weight + a float scale per row
    assert q.model_bytes(model) < q.model_bytes(ref)
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    with torch.no_grad():
        a, b = ref.language_model(ids).logits, model.language_model(ids).logits
    assert float((a - b).abs().max()) < 0.05 * float(a.abs().max())


def test_int4_on_cpu_is_a_clear_error_and_bad_names_are_refused():
    with pytest.raises(ValueError, match="int4 runs on a CUDA GPU only: torchao"):
        load_model("tiny", quantize="int4")
    with pytest.raises(ValueError, match="quantize='int3'"):
        load_model("tiny", quantize="int3")
    with pytest.raises(ValueError, match="quantize is for inference"):
        load_model("tiny", quantize="int8", for_inference=False)
    assert q.QUANTIZE_CHOICES == QUANTIZE_CHOICES


def test_quantize_flag_is_a_model_flag():
    parser = argparse.ArgumentParser()
    add_model_flags(parser)
    assert parser.parse_args([]).quantize == "none"
    assert parser.parse_args(["--quantize", "int8"]).quantize == "int8"
