"""Saved folders carry generation_config.json: save -> load gives the sampling values the model had."""

from __future__ import annotations

import argparse
import json

from osprey.flags import add_decoding_flags
from osprey.model.generation import options_from_flags
from osprey.model.loading import generation_defaults, load_model
from osprey.model.weights import GENERATION_CONFIG, save_pretrained

# Vicuna-7B-v1.5's generation_config.json (the official stage folders inherit it through HF save_pretrained)
VICUNA = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "temperature": 0.9, "max_length": 4096,
          "top_p": 0.6, "transformers_version": "4.31.0"}


def _sampled(model):
    parser = argparse.ArgumentParser()
    add_decoding_flags(parser)
    return options_from_flags(parser.parse_args(["--sample"]), generation_defaults(model))


def test_a_preset_saved_and_loaded_samples_as_before(tmp_path):
    model, _, _ = load_model("tiny")
    assert generation_defaults(model) == {}
    save_pretrained(model, tmp_path / "a")
    written = json.loads((tmp_path / "a" / GENERATION_CONFIG).read_text())
    assert written["do_sample"] is False and written["max_new_tokens"] == 1024
    assert (written["temperature"], written["top_p"], written["top_k"]) == (0.2, 1.0, 50)  # what --sample uses
    assert written["eos_token_id"] == model.language_model.config.eos_token_id
    loaded, _, _ = load_model(tmp_path / "a")
    assert generation_defaults(loaded) == {"temperature": 0.2, "top_p": 1.0, "top_k": 50}
    assert _sampled(loaded) == _sampled(model)
    save_pretrained(loaded, tmp_path / "b")  # and again: nothing drifts
    again, _, _ = load_model(tmp_path / "b")
    assert generation_defaults(again) == generation_defaults(loaded)


def test_values_loaded_from_a_folder_are_written_back_unchanged(tmp_path):
    model, _, _ = load_model("tiny")
    save_pretrained(model, tmp_path / "src")
    (tmp_path / "src" / GENERATION_CONFIG).write_text(json.dumps(VICUNA))  # as an official folder has it
    vicuna, _, _ = load_model(tmp_path / "src")
    assert generation_defaults(vicuna) == {"temperature": 0.9, "top_p": 0.6}
    save_pretrained(vicuna, tmp_path / "out")
    loaded, _, _ = load_model(tmp_path / "out")
    assert generation_defaults(loaded) == generation_defaults(vicuna)
    assert (_sampled(loaded).top_p, _sampled(loaded).top_k) == (0.6, 50) and _sampled(loaded) == _sampled(vicuna)
