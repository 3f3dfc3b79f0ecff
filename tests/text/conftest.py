"""Shared fixtures: the bundled LLaMA-2 tokenizer and a tiny GPT-2-style tokenizer."""

from __future__ import annotations

import pytest
from text_helpers import build_tiny_hf_tokenizer

import osprey  # noqa: F401  (must precede transformers: torchvision compat)
from osprey.text.tokenizer import HFTokenizer, SentencePieceTokenizer, llama2_tokenizer


@pytest.fixture(scope="session")
def llama() -> SentencePieceTokenizer:
    return llama2_tokenizer()


@pytest.fixture(scope="session")
def tiny_hf() -> HFTokenizer:
    return HFTokenizer(build_tiny_hf_tokenizer())
