"""Text tokenizers with the segment semantics of the official Osprey code, and the slot ids.

The official code tokenizes with transformers 4.31's ``LlamaTokenizerFast``: special tokens
(``<mask>``, ``<pos>``, ``</s>``) split the text, each text segment between them is normalised on
its own ("▁" prepended, spaces turned into "▁"), and ``<image>`` chunks are tokenized separately.
A :class:`TextTokenizer` therefore only ever encodes ONE plain text segment; the renderer
(:mod:`osprey.text.render`) decides where segments start and end and adds the special ids itself.
Nothing in here parses special tokens out of text: a user typing ``<mask>`` or ``</s>`` gets
ordinary text ids, never a control id.
"""

from __future__ import annotations

import abc
import functools
import importlib.resources
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

IMAGE_TOKEN_INDEX = -200  # the official placeholder id of one image (osprey/constants.py)
SPIECE_SPACE = "▁"  # SentencePiece's visible space (U+2581)
LLAMA2_ASSET = ("assets", "tokenizers", "llama2", "tokenizer.model")


class TextTokenizer(abc.ABC):
    """One text segment in, ids out; no BOS/EOS added and no special-token parsing.

    Attributes:
        bos_id: the id placed first in every sequence, or None when the model uses none.
        eos_id: ends every assistant answer (the template's ``sep2``) and stops generation.
        pad_id: fills batches; padded positions are masked, so any valid row works.
        vocab_size: rows of the embedding table that real text ids use; slot ids start here.
        eos_text: how ``eos_id`` is written in prompt text (``"</s>"`` for LLaMA).
    """

    bos_id: int | None
    eos_id: int
    pad_id: int
    vocab_size: int
    eos_text: str

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of one plain text segment (empty text gives [])."""

    @abc.abstractmethod
    def encode_after_space(self, text: str) -> list[int]:
        """Ids that ``text`` contributes to ``encode(prefix + " " + text)``.

        ``prefix`` is any text ending in a non-space character (in practice ``"...ASSISTANT:"``).
        This lets the renderer encode the prompt and the answer as separate pieces, so labels are
        set while tokenizing, and still produce exactly the ids of the joint run.
        """

    @abc.abstractmethod
    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ``ids``; with ``skip_special`` control ids (and slot ids) are dropped."""


class SentencePieceTokenizer(TextTokenizer):
    """A SentencePiece model used the way LLaMA's fast tokenizer uses it.

    ``encode(segment)`` is ``sp.encode(segment)`` with the model's dummy prefix: that equals what
    ``LlamaTokenizerFast`` (transformers 4.31) gives for a segment between special tokens. The
    transformers 5.x ``LlamaTokenizer`` differs on segments that start with a space, so it is not
    used.
    """

    def __init__(self, model_path: str | Path, *, eos_text: str = "</s>") -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"SentencePiece model {self.model_path} not found")
        self._sp = spm.SentencePieceProcessor(model_file=str(self.model_path))
        self.vocab_size = self._sp.get_piece_size()
        self.bos_id = _optional_id(self._sp.bos_id())
        eos_id = _optional_id(self._sp.eos_id())
        if eos_id is None:
            raise ValueError(f"SentencePiece model {self.model_path} has no eos id; answers need one")
        self.eos_id = eos_id
        # LLaMA has no pad piece; the official code pads with unk (id 0).
        pad_id = _optional_id(self._sp.pad_id())
        self.pad_id = pad_id if pad_id is not None else max(self._sp.unk_id(), 0)
        self.eos_text = eos_text
        self._space_id = self._sp.piece_to_id(SPIECE_SPACE)
        _check_space_never_merges_left(self._sp, self.model_path)
        _check_answer_split(self, hint=f"{self.model_path} needs add_dummy_prefix, as LLaMA's model has")

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text)) if text else []

    def encode_after_space(self, text: str) -> list[int]:
        # A piece never holds "▁" after another character (checked at load), so the joint run
        # splits at that space: the part after it is encode(text), whose dummy prefix stands in
        # for the space. Empty text leaves the lone space, which is the "▁" piece.
        return self.encode(text) if text else [self._space_id]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        if skip_special:
            return self._sp.decode([i for i in ids if self._is_text_id(i)])
        # Decode each run between special ids on its own: every run was encoded as a segment with
        # its own dummy prefix, so decode(encode(segment)) == segment holds run by run.
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            if self._is_text_id(token_id):
                run.append(token_id)
            else:
                parts += [self._sp.decode(run), self._special_text(token_id)]
                run = []
        parts.append(self._sp.decode(run))
        return "".join(parts)

    def _is_text_id(self, token_id: int) -> bool:
        in_vocab = 0 <= token_id < self.vocab_size
        return in_vocab and not (self._sp.is_control(token_id) or self._sp.is_unknown(token_id))

    def _special_text(self, token_id: int) -> str:
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(
                f"id {token_id} is outside the vocabulary [0, {self.vocab_size}); slot ids cannot be "
                "decoded as text (use skip_special=True or collapse_image_slots first)"
            )
        return self._sp.id_to_piece(token_id)


class HFTokenizer(TextTokenizer):
    """Any transformers tokenizer, for GPT-2-style byte-level BPE models such as SmolLM2.

    There is no dummy prefix, so an answer that follows ``"ASSISTANT:"`` is encoded with its
    leading space. Special-token strings in the text are split into ordinary text ids
    (``split_special_tokens=True``), like the SentencePiece path.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        eos_id = tokenizer.eos_token_id
        if eos_id is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos token; answers need one")
        self.eos_id = int(eos_id)
        self.eos_text = str(tokenizer.eos_token)
        self.bos_id = self._bos_it_prepends()
        self.pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else self.eos_id
        self.vocab_size = len(tokenizer)
        _check_answer_split(
            self, hint="a tokenizer with a dummy prefix (LLaMA) must be a SentencePieceTokenizer"
        )

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._tok(text, add_special_tokens=False, split_special_tokens=True).input_ids)

    def encode_after_space(self, text: str) -> list[int]:
        return self.encode(" " + text)

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        if skip_special:
            ids = [i for i in ids if 0 <= i < self.vocab_size]
        else:
            outside = [i for i in ids if not 0 <= i < self.vocab_size]
            if outside:
                raise ValueError(f"ids {outside[:4]} are outside the vocabulary [0, {self.vocab_size})")
        return str(self._tok.decode(list(ids), skip_special_tokens=skip_special))

    def _bos_it_prepends(self) -> int | None:
        """The BOS the tokenizer itself adds (LLaMA-style), else None: SmolLM2 defines
        ``<|im_start|>`` as bos but never prepends it, and neither should we."""
        bos = self._tok.bos_token_id
        with_specials = self._tok("a", add_special_tokens=True).input_ids
        return int(bos) if bos is not None and with_specials[:1] == [bos] else None


@dataclass(frozen=True)
class SlotIds:
    """Ids that mark where the model scatters features; never looked up in an embedding table.

    ``image`` is the official ``IMAGE_TOKEN_INDEX`` (-200); ``mask``/``pos`` are the first ids
    after the text vocabulary, which for LLaMA are the official ``<mask>``=32000, ``<pos>``=32001.
    """

    image: int
    mask: int
    pos: int

    @classmethod
    def for_tokenizer(cls, tokenizer: TextTokenizer) -> SlotIds:
        return cls(image=IMAGE_TOKEN_INDEX, mask=tokenizer.vocab_size, pos=tokenizer.vocab_size + 1)


@functools.cache
def llama2_tokenizer() -> SentencePieceTokenizer:
    """The bundled LLaMA-2 / Vicuna-v1.5 tokenizer (see assets/tokenizers/llama2/PROVENANCE.md)."""
    resource = importlib.resources.files("osprey").joinpath(*LLAMA2_ASSET)
    with importlib.resources.as_file(resource) as path:
        return SentencePieceTokenizer(path)


TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json")


def save_tokenizer(tokenizer: TextTokenizer, folder: str | Path) -> None:
    """Write ``tokenizer``'s files into ``folder`` so that ``load_tokenizer(folder)`` returns it."""
    folder = Path(folder)
    if isinstance(tokenizer, SentencePieceTokenizer):
        shutil.copyfile(tokenizer.model_path, folder / "tokenizer.model")
    elif isinstance(tokenizer, HFTokenizer):
        tokenizer._tok.save_pretrained(str(folder))
    else:
        raise TypeError(f"cannot save a {type(tokenizer).__name__}: expected a SentencePiece or transformers tokenizer")


def load_tokenizer(spec: str | Path) -> TextTokenizer:
    """``"llama2"`` (bundled), a ``*.model`` SentencePiece file, a ``*.gguf`` file, or a folder.

    A folder with ``tokenizer.model`` loads as SentencePiece (LLaMA-family folders carry it, and
    only that path gives the official segment semantics); otherwise a folder with
    ``tokenizer.json`` or ``tokenizer_config.json`` loads through transformers. A GGUF file
    (SmolLM2 ships as one) loads its tokenizer through transformers too.
    """
    if str(spec) == "llama2":
        return llama2_tokenizer()
    path = Path(spec)
    if path.is_file() and path.suffix == ".model":
        return SentencePieceTokenizer(path)
    if path.is_dir() and (path / "tokenizer.model").is_file():
        return SentencePieceTokenizer(path / "tokenizer.model")
    if path.is_file() and path.suffix == ".gguf":
        return HFTokenizer(_auto_tokenizer(path.parent, gguf_file=path.name))
    if path.is_dir() and any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return HFTokenizer(_auto_tokenizer(path))
    raise ValueError(
        f"cannot load a tokenizer from {str(spec)!r}: expected 'llama2', a SentencePiece '*.model' "
        "file, a '*.gguf' file, or a folder containing tokenizer.model, tokenizer.json or "
        "tokenizer_config.json"
    )


def _auto_tokenizer(folder: Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer  # heavy; only the HF paths need it

    return AutoTokenizer.from_pretrained(str(folder), **kwargs)


def _optional_id(token_id: int) -> int | None:
    """SentencePiece reports a missing special piece as -1."""
    return token_id if token_id >= 0 else None


def _check_space_never_merges_left(sp: spm.SentencePieceProcessor, model_path: Path) -> None:
    """``encode_after_space`` is exact only if no piece has "▁" after another character."""
    pattern = re.compile(f"[^{SPIECE_SPACE}]{SPIECE_SPACE}")
    crossing = [p for p in (sp.id_to_piece(i) for i in range(sp.get_piece_size())) if pattern.search(p)]
    if crossing:
        raise ValueError(
            f"{model_path}: pieces {crossing[:5]} join a space to the text before it, so prompt and "
            "answer cannot be tokenized separately; expected a LLaMA-style vocabulary"
        )


def _check_answer_split(tokenizer: TextTokenizer, *, hint: str) -> None:
    """Fail at load, not silently in the labels, if prompt and answer cannot be encoded apart."""
    for prefix, answer in (("USER: hi ASSISTANT:", "a dog."), ("x:", "\n2 cats"), ("A:", "")):
        joint = tokenizer.encode(prefix + " " + answer)
        split = tokenizer.encode(prefix) + tokenizer.encode_after_space(answer)
        if joint != split:
            raise ValueError(
                f"{type(tokenizer).__name__} tokenizes {prefix + ' ' + answer!r} as {joint} but "
                f"prompt + answer separately as {split}; {hint}"
            )
