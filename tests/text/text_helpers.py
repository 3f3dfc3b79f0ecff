"""Helpers for the text tests: paths, and a tiny GPT-2-style tokenizer built in-process (no downloads)."""

from __future__ import annotations

from pathlib import Path

import osprey  # imported before transformers (torchvision compat); also locates the assets

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = (REPO_ROOT / ".." / "shared" / "golden").resolve()
ASSET_DIR = Path(osprey.__file__).resolve().parent / "assets" / "tokenizers" / "llama2"

TINY_CORPUS = [
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "USER: What is the category of this region? ASSISTANT: a brown dog",
    "There are 2 part regions in the picture: region1, region2. Using only one word or phrase.",
    "It is a cat sitting on a red sofa next to the window.\nThe cat looks at 3 birds.",
]


def build_tiny_hf_tokenizer(*, dummy_prefix: bool = False):
    """A byte-level BPE tokenizer (GPT-2 / SmolLM2 style) trained in a few ms on ``TINY_CORPUS``.

    With ``dummy_prefix`` it is instead built like transformers 4.31's LlamaTokenizerFast: a
    normalizer that prepends "▁" and turns spaces into "▁", and no pre-tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if dummy_prefix:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        alphabet = sorted(set("".join(TINY_CORPUS).replace(" ", "▁")))
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<|endoftext|>", "<|im_end|>"], initial_alphabet=alphabet
    )
    tok.train_from_iterator(TINY_CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>")
