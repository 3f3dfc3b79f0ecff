"""--quantize: torchao weight-only int8 of the LLM's and the projector's Linear layers."""

from __future__ import annotations

import argparse

import pytest
import torch

from osprey.flags import QUANTIZE_CHOICES, add_model_flags
from osprey.model import quantize as q
from osprey.model.loading import load_model
from osprey.model.quantize_cpu import FAST_ROWS, CpuInt8Linear

pytest.importorskip("torchao")


def test_int8_quantizes_llm_and_projector_linears_only_and_shrinks_them():
    ref, _, _ = load_model("tiny", seed=3)
    model, _, _ = load_model("tiny", seed=3, quantize="int8")
    names = dict(q.quantized_linears(model))
    assert "language_model.lm_head" in names and any(n.startswith("projector") for n in names)
    for name, module in names.items():  # on the CPU the LLM's Linears use torch's int8 kernel
        if name.startswith("language_model"):
            assert isinstance(module, CpuInt8Linear), name
        else:
            assert type(module.weight).__name__ == "Int8Tensor", name
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


def _torchao_int8(linear: torch.nn.Linear) -> torch.nn.Linear:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    quantize_(torch.nn.Sequential(linear), Int8WeightOnlyConfig())
    return linear


def test_cpu_int8_linear_stores_torchaos_numbers_and_computes_as_torchao():
    torch.manual_seed(0)
    plain = torch.nn.Linear(256, 96)
    ao = _torchao_int8(_copy(plain))
    fast = CpuInt8Linear.from_torchao(ao)
    assert fast.qweight.dtype == torch.int8 and torch.equal(fast.qweight, ao.weight.qdata)
    assert torch.equal(fast.scale, ao.weight.scale.reshape(-1))
    scale = plain.weight.detach().abs().amax(1) / 127.5  # symmetric per output row
    torch.testing.assert_close(fast.scale, scale, rtol=1e-6, atol=0)
    with torch.no_grad():
        prompt = torch.randn(2, FAST_ROWS, 256)  # 32 rows: torchao's own computation, bit for bit
        assert torch.equal(fast(prompt), ao(prompt))
        for rows in (1, 3, FAST_ROWS):  # decoding rows: the int8 kernel, bfloat16 activations
            x = torch.randn(1, rows, 256)
            got, want, exact = fast(x), ao(x), plain(x)
            assert got.shape == want.shape == (1, rows, 96) and got.dtype == torch.float32
            assert float((got - want).norm() / want.norm()) < 1e-2, rows  # bf16 rounding, 2**-9 relative
            assert float((got - exact).norm() / exact.norm()) < 2e-2, rows


def _copy(linear: torch.nn.Linear) -> torch.nn.Linear:
    out = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    out.load_state_dict(linear.state_dict())
    return out


def test_cpu_int8_linear_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="expected torchao's Int8Tensor"):
        CpuInt8Linear.from_torchao(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"expected a 2-D torch\.int8"):
        CpuInt8Linear(torch.zeros(4, 4), torch.ones(4), None)
    with pytest.raises(ValueError, match=r"expected \(4,\), one per output row"):
        CpuInt8Linear(torch.zeros(4, 4, dtype=torch.int8), torch.ones(3), None)


def test_a_tied_lm_head_stays_float_and_is_not_counted():
    """A head tied to the token embeddings (the bundled SmolLM2) keeps the float table it shares."""
    tied = {"language_model.hf_config.tie_word_embeddings": True}
    ref, _, _ = load_model("tiny", seed=3, overrides=tied)
    model, _, _ = load_model("tiny", seed=3, overrides=tied, quantize="int8")
    lm = model.language_model
    assert lm.lm_head.weight is lm.get_input_embeddings().weight and type(lm.lm_head.weight) is torch.nn.Parameter
    names = dict(q.quantized_linears(model))
    assert "language_model.lm_head" not in names and "language_model.lm_head" in dict(q.quantized_linears(
        load_model("tiny", seed=3, quantize="int8")[0]))
    assert all(isinstance(m, CpuInt8Linear) for n, m in names.items() if n.startswith("language_model"))
    assert 0.25 <= q.linear_weight_bytes(model) / q.linear_weight_bytes(ref) <= 0.35
