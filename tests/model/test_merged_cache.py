"""The merged-LLM cache: a hit gives exactly the weights a fresh merge gives; any change is a miss."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from osprey.model import merged_cache
from osprey.model.weights import ADAPTER_WEIGHTS, from_pretrained

BUNDLE = Path(__file__).resolve().parents[2] / "src" / "osprey" / "assets" / "models" / "osprey-small"

pytestmark = pytest.mark.skipif(not (BUNDLE / ADAPTER_WEIGHTS).exists(), reason="bundled model not installed")


def _llm_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.language_model.state_dict().items()}


def test_hit_equals_a_fresh_merge_and_a_changed_adapter_misses(tmp_path, monkeypatch):
    monkeypatch.setattr(merged_cache, "cache_root", lambda: tmp_path / "cache" / "merged")
    monkeypatch.setattr(merged_cache, "MIN_PARAMETERS", 1 << 62)  # caching off: the reference merge
    reference = _llm_state(from_pretrained(BUNDLE))
    assert not (tmp_path / "cache" / "merged").exists()

    monkeypatch.setattr(merged_cache, "MIN_PARAMETERS", 0)
    first = from_pretrained(BUNDLE)  # a miss: merges and stores
    entries = list((tmp_path / "cache" / "merged").glob("*.safetensors"))
    assert len(entries) == 1
    calls = []
    real_load = merged_cache.load_merged
    monkeypatch.setattr(merged_cache, "load_merged", lambda llm, key: calls.append(real_load(llm, key)) or calls[-1])
    second = from_pretrained(BUNDLE)  # a hit
    assert calls == [True]
    assert second.language_model_modified
    for state in (_llm_state(first), _llm_state(second)):
        assert state.keys() == reference.keys()
        for key, value in reference.items():
            assert torch.equal(state[key], value), key
    # the tied embedding and lm_head are still one tensor after a hit
    lm = second.language_model
    if lm.config.tie_word_embeddings:
        assert lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()

    changed = tmp_path / "changed"
    shutil.copytree(BUNDLE, changed)
    adapter = load_file(str(changed / ADAPTER_WEIGHTS))
    name = sorted(k for k in adapter if "lora_B" in k)[0]
    adapter[name] = adapter[name] + 0.01
    save_file(adapter, str(changed / ADAPTER_WEIGHTS))
    calls.clear()
    third = from_pretrained(changed)
    assert calls == [False]  # another adapter: merged again, not the first entry
    assert len(list((tmp_path / "cache" / "merged").glob("*.safetensors"))) == 2
    assert any(not torch.equal(v, reference[k]) for k, v in _llm_state(third).items())


def test_a_damaged_entry_is_merged_again(tmp_path, monkeypatch):
    monkeypatch.setattr(merged_cache, "cache_root", lambda: tmp_path / "cache" / "merged")
    monkeypatch.setattr(merged_cache, "MIN_PARAMETERS", 0)
    reference = _llm_state(from_pretrained(BUNDLE))
    (entry,) = (tmp_path / "cache" / "merged").glob("*.safetensors")
    entry.write_bytes(entry.read_bytes()[:1000])  # truncated
    again = _llm_state(from_pretrained(BUNDLE))
    for key, value in reference.items():
        assert torch.equal(again[key], value), key
