"""Sampling as the official ``generate(do_sample=True, temperature=0.2)`` resolves it: top_p/top_k from
the checkpoint's generation_config.json, else transformers' defaults; every value overridable."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from osprey.flags import add_decoding_flags
from osprey.model.generation import DecodingOptions, options_from_flags, pick_tokens, sampling_values
from osprey.model.loading import read_generation_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_decoding_flags(parser)
    return parser.parse_args(list(argv))


def test_without_a_generation_config_sampling_uses_transformers_defaults_and_the_official_temperature():
    options = DecodingOptions.official_sampling(seed=1)
    assert (options.temperature, options.top_p, options.top_k, options.max_new_tokens) == (0.2, 1.0, 50, 1024)
    assert sampling_values() == {"temperature": 1.0, "top_p": 1.0, "top_k": 50}


def test_the_checkpoint_generation_config_fills_what_the_official_scripts_do_not_pass(tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps(
        {"temperature": 0.9, "top_p": 0.6, "max_length": 4096, "bos_token_id": 1}))
    config = read_generation_config(tmp_path)
    assert config == {"temperature": 0.9, "top_p": 0.6}
    options = DecodingOptions.official_sampling(generation_config=config)
    assert (options.temperature, options.top_p, options.top_k) == (0.2, 0.6, 50)  # the scripts pass T=0.2
    assert read_generation_config(tmp_path / "nothing") == {}


def test_flags_greedy_by_default_and_each_value_overridable():
    assert options_from_flags(_args()) == DecodingOptions(max_new_tokens=1024)
    config = {"top_p": 0.6, "top_k": 20}
    sampled = options_from_flags(_args("--sample", "--seed", "5"), config)
    assert (sampled.do_sample, sampled.temperature, sampled.top_p, sampled.top_k, sampled.seed) == (True, 0.2, 0.6, 20, 5)
    custom = options_from_flags(_args("--temperature", "0.7", "--top-p", "0.9", "--top-k", "0"), config)
    assert (custom.do_sample, custom.temperature, custom.top_p, custom.top_k) == (True, 0.7, 0.9, 0)
    assert custom.describe() == {"mode": "sample", "max_new_tokens": 1024, "temperature": 0.7, "top_p": 0.9,
                                 "top_k": 0, "seed": 0}
    assert options_from_flags(_args()).describe() == {"mode": "greedy", "max_new_tokens": 1024}


def test_top_k_keeps_only_the_k_most_likely_tokens():
    logits = torch.tensor([[0.0, 5.0, 4.9, 4.8, -1.0]]).repeat(400, 1)
    generator = torch.Generator().manual_seed(0)
    picked = pick_tokens(logits, DecodingOptions(do_sample=True, temperature=5.0, top_k=2), generator)
    assert set(picked.tolist()) == {1, 2}
    wide = pick_tokens(logits, DecodingOptions(do_sample=True, temperature=5.0, top_k=0), generator)
    assert {0, 3, 4} & set(wide.tolist())
    with pytest.raises(ValueError, match="top_k"):
        DecodingOptions(top_k=-1)


def test_answer_lengths_default_to_the_official_1024():
    from osprey.serve.settings import ServeSettings

    assert _args().max_new_tokens == 1024
    settings = ServeSettings()
    assert (settings.default_new_tokens, settings.max_new_tokens) == (1024, 1024)
    assert ServeSettings(max_new_tokens=16).default_new_tokens == 16  # the default never exceeds the cap
