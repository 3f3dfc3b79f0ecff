"""Answer questions about regions of an image.

The image is encoded once (vision tower + projector + the four feature maps), each region's
tokens come from one pass of the mask extractor, and every query about the image is answered in
one batched, left-padded generation with a KV cache whose shared prefix (system prompt + image
tokens) is prefilled only once (see :mod:`osprey.inference.batch`).

    predictor = RegionPredictor(model, tokenizer)
    encoded = predictor.encode("photo.jpg")
    predictor.describe(encoded, masks)                                   # one answer per mask
    predictor.ask(encoded, masks, [Query("Is <region1> left of <region2>?", (0, 3))])  # [Answer]: str + usage
    for index, piece in predictor.stream(encoded, masks, queries): ...   # for servers
    chat = predictor.chat(encoded, masks); chat.send("What is <region1>?")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from osprey.image import load_image, preprocess
from osprey.inference.batch import BEGIN, EncodedImage, PreparedBatch, Query, prepare_batch, render_query
from osprey.inference.regions import MAX_REGIONS, check_masks
from osprey.inference.streaming import TextStream
from osprey.model.generation import DecodingOptions, decode_steps
from osprey.model.osprey import OspreyModel
from osprey.text.conversation import Turn, get_template
from osprey.text.geometry import region_texts
from osprey.text.prompts import CATEGORY_QUESTION, DETAILED_DESCRIPTION_QUESTION, SHORT_DESCRIPTION_QUESTION
from osprey.text.tokenizer import TextTokenizer

__all__ = ["BEGIN", "QUESTIONS", "Answer", "ChatSession", "DecodingOptions", "EncodedImage", "Query", "RegionPredictor"]

# Official demo / eval prompts (osprey-official.md §1.8), with <region1> where they have <mask><pos>.
QUESTIONS = {
    "short": SHORT_DESCRIPTION_QUESTION,
    "detailed": DETAILED_DESCRIPTION_QUESTION,
    "category": CATEGORY_QUESTION,
}

ImageInput = EncodedImage | str | Path | Image.Image | np.ndarray
MasksInput = torch.Tensor | np.ndarray | Sequence[np.ndarray]


class RegionPredictor:
    def __init__(self, model: OspreyModel, tokenizer: TextTokenizer, template: str | None = None, *,
                 max_regions: int = MAX_REGIONS) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = get_template(template or model.config.template)
        self.slots = model.slots
        self.max_regions = max_regions

    # -- images ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, image: str | Path | Image.Image | np.ndarray) -> EncodedImage:
        """Run the vision tower and projector once; reuse the result for every question."""
        pil = load_image(image)
        vision = self.model.config.vision
        pixels = preprocess(pil, vision.image_size, vision.mean, vision.std)[None].to(self.device)
        levels, tokens = self.model.encode_images(pixels)
        return EncodedImage(levels=levels, image_tokens=tokens, size=(pil.height, pil.width))

    def _encoded(self, image: ImageInput) -> EncodedImage:
        return image if isinstance(image, EncodedImage) else self.encode(image)

    @property
    def device(self) -> torch.device:
        """Where the model runs (its language model's embeddings)."""
        return self.model.language_model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision the language model runs in (the mask extractor may run in float32)."""
        return self.model.language_model.dtype

    # -- questions ---------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, image: ImageInput, masks: MasksInput, queries: Sequence[Query], *,
                zero_regions: bool = False) -> PreparedBatch:
        """The batched model inputs for ``queries`` (exposed for tests and evaluation ablations)."""
        encoded = self._encoded(image)
        checked = check_masks(masks, encoded.size, max_regions=self.max_regions)
        queries = _as_queries(queries)
        return prepare_batch(self.model, self.tokenizer, self.template, encoded, checked, queries,
                             zero_regions=zero_regions)

    def prompt_length(self, query: Query, masks: MasksInput) -> int:
        """Tokens the model reads for ``query`` about ``masks``: its rendered prompt, image and region
        slots (and the model's region text) included."""
        ids, _ = render_query(query, model=self.model, tokenizer=self.tokenizer, template=self.template,
                              num_masks=len(masks), mask_texts=region_texts(masks, self.model.config.region_text))
        return len(ids)

    @torch.no_grad()
    def ask(
        self,
        image: ImageInput,
        masks: MasksInput,
        queries: Sequence[Query],
        options: DecodingOptions | None = None,
        *,
        zero_regions: bool = False,
        on_token: Callable[[int, str], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> list[Answer]:
        """One :class:`Answer` per query, all generated in one batch.

        ``zero_regions`` replaces every region's ``<mask>``/``<pos>`` features with zeros (an
        evaluation ablation). ``on_token(query_index, text_piece)`` receives the answers' text as
        it is produced; each query's pieces concatenate to its returned answer (without it, nothing
        is detokenised before the end). ``cancel()`` is asked before each decoding step, the prefill
        included; once it returns True decoding stops and the answers so far come back with
        ``finish_reason == "cancelled"``.
        """
        queries = _as_queries(queries)
        if not queries:
            return []
        options = options or DecodingOptions()
        batch = self.prepare(image, masks, queries, zero_regions=zero_regions)
        tally = _Tally(len(queries))
        streams = None if on_token is None else [TextStream(self.tokenizer) for _ in queries]
        for index, piece in self._decode(batch, options, tally, streams, cancel):
            on_token(index, piece)  # type: ignore[misc]  (pieces come only with streams, so with on_token)
        return [Answer(self.tokenizer.decode(ids).strip(), prompt_tokens=length, completion_tokens=len(ids),
                       finish_reason=tally.reason(row, options.max_new_tokens))
                for row, (ids, length) in enumerate(zip(tally.ids, batch.lengths, strict=True))]

    def stream(
        self,
        image: ImageInput,
        masks: MasksInput,
        queries: Query | Sequence[Query],
        options: DecodingOptions | None = None,
        *,
        zero_regions: bool = False,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[tuple[int, str]]:
        """Yield ``(query_index, text_piece)`` as the batch decodes (for server-sent events).

        Work starts at the first ``next()``; each query's pieces concatenate to its full answer.
        ``cancel`` as in :meth:`ask` (asked between prefill chunks and before every step).
        """
        queries = _as_queries(queries)
        if not queries:
            return
        with torch.no_grad():
            batch = self.prepare(image, masks, queries, zero_regions=zero_regions)
        streams = [TextStream(self.tokenizer) for _ in queries]
        yield from self._decode(batch, options, _Tally(len(queries)), streams, cancel)

    def _decode(self, batch: PreparedBatch, options: DecodingOptions | None, tally: _Tally,
                streams: list[TextStream] | None, cancel: Callable[[], bool] | None) -> Iterator[tuple[int, str]]:
        """Decode ``batch``, recording ids and endings in ``tally``; with ``streams``, yield each
        row's new text pieces on the way."""
        steps = decode_steps(self.model, batch.embeds, batch.attention_mask, eos_id=self.tokenizer.eos_id,
                             options=options, prefix_embeds=batch.prefix_embeds, cancel=cancel)
        while True:
            if cancel is not None and cancel():
                break
            step = next(steps, None)
            if step is None:
                break
            for row, token in step.tokens:
                tally.ids[row].append(token)
                if streams is not None and (piece := streams[row].push(token)):
                    yield row, piece
            tally.ended.update(step.ended)
        steps.close()
        for row, stream in enumerate(streams or []):
            if piece := stream.finish():  # at EOS, at max_new_tokens or cancelled: no token follows
                yield row, piece

    @torch.no_grad()
    def describe(
        self,
        image: ImageInput,
        masks: MasksInput,
        question: str = "short",
        options: DecodingOptions | None = None,
        *,
        cancel: Callable[[], bool] | None = None,
        prefix: str = BEGIN,
    ) -> list[Answer]:
        """One answer per mask (R, H, W). ``question`` is ``"short"``, ``"detailed"``, ``"category"``
        or text that names the region as ``<region1>``; ``cancel`` as in :meth:`ask`; ``prefix`` the
        first-turn prefix (the official demo's: :data:`osprey.text.prompts.DEMO_OVERVIEW`)."""
        text = question_text(question)
        encoded = self._encoded(image)
        checked = check_masks(masks, encoded.size, max_regions=self.max_regions)
        queries = [Query(text, (i,), prefix=prefix) for i in range(int(checked.shape[0]))]
        return self.ask(encoded, checked, queries, options, cancel=cancel)

    def chat(self, image: ImageInput, masks: MasksInput, *, options: DecodingOptions | None = None) -> ChatSession:
        """A multi-turn chat about ``masks`` (``<regionK>`` is ``masks[K-1]``) on one encoded image."""
        encoded = self._encoded(image)
        checked = check_masks(masks, encoded.size, max_regions=self.max_regions)
        return ChatSession(self, encoded, checked, options=options)


class ChatSession:
    """Keeps the history of a chat; every turn reuses the encoded image."""

    def __init__(self, predictor: RegionPredictor, encoded: EncodedImage, masks: torch.Tensor, *,
                 options: DecodingOptions | None = None) -> None:
        self.predictor = predictor
        self.encoded = encoded
        self.masks = masks
        self.options = options
        self.history: list[Turn] = []

    @property
    def regions(self) -> tuple[int, ...]:
        return tuple(range(int(self.masks.shape[0])))

    def query(self, text: str) -> Query:
        return Query(text, self.regions, tuple(self.history))

    def send(self, text: str, options: DecodingOptions | None = None, *,
             on_token: Callable[[str], None] | None = None) -> Answer:
        """Answer ``text`` given the earlier turns, and remember both."""
        callback = None if on_token is None else (lambda _index, piece: on_token(piece))
        answer = self.predictor.ask(self.encoded, self.masks, [self.query(text)], options or self.options,
                                    on_token=callback)[0]
        self._remember(text, answer)
        return answer

    def stream(self, text: str, options: DecodingOptions | None = None) -> Iterator[str]:
        """Yield the answer's pieces; the turn is remembered once the answer is complete."""
        pieces: list[str] = []
        for _index, piece in self.predictor.stream(self.encoded, self.masks, self.query(text),
                                                   options or self.options):
            pieces.append(piece)
            yield piece
        self._remember(text, "".join(pieces))

    def reset(self) -> None:
        self.history.clear()

    def _remember(self, text: str, answer: str) -> None:
        # An empty answer cannot be rendered as a turn (the template would read it as open).
        self.history += [Turn("user", text), Turn("assistant", answer or " ")]


FinishReason = Literal["stop", "length", "cancelled"]


class Answer(str):
    """One answer: its text (this ``str`` itself, so ``answer == "a car"`` holds) and its usage.

    ``prompt_tokens`` counts every token the model read for it (text, image and region slots: the
    prepared batch's row length); ``completion_tokens`` the ids it generated (EOS excluded);
    ``finish_reason`` is ``"stop"`` (EOS), ``"length"`` (``max_new_tokens`` reached) or
    ``"cancelled"``. String methods return plain ``str``: the usage belongs to the answer as given.
    """

    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason

    def __new__(cls, text: str, *, prompt_tokens: int, completion_tokens: int,
                finish_reason: FinishReason) -> Answer:
        answer = super().__new__(cls, text)
        answer.__dict__.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                               finish_reason=finish_reason)
        return answer

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Answer is immutable (cannot set {name!r})")

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, Any]]:  # pickling (worker processes)
        return (str(self),), dict(self.__dict__)

    @property
    def text(self) -> str:
        return str(self)


class _Tally:
    """What decoding a batch produced so far: each row's ids and the rows that reached EOS."""

    def __init__(self, rows: int) -> None:
        self.ids: list[list[int]] = [[] for _ in range(rows)]
        self.ended: set[int] = set()

    def reason(self, row: int, max_new_tokens: int) -> FinishReason:
        """Why ``row`` stopped: a row that neither reached EOS nor the cap was cancelled."""
        if row in self.ended:
            return "stop"
        return "length" if len(self.ids[row]) >= max_new_tokens else "cancelled"


# Typed text cannot hold the slot tokens: a typed "<mask>" or "<pos>" would become a feature slot
# (and crash the official code: ids 32000/32001 lie outside the embedding), "<image>" a second image
# slot. They are refused, not guessed at: text names regions <region1>, <region2>, ...
RESERVED = re.compile(r"<\s*(mask|pos|image)\s*>", re.IGNORECASE)
REGION_REF = re.compile(r"<region(\d+)>")

RANDOM_WEIGHTS_NOTE = ("model {spec!r} is a preset with RANDOM weights: answers are noise. "
                       "Pass a trained checkpoint folder for real answers.")


def check_question(text: Any, num_regions: int, what: str = "question") -> str:
    """``text`` as typed by a person (a CLI line, a client's message), if it names only regions that
    exist and holds no reserved slot token; else a ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is a {type(text).__name__}; expected a string")
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL character; expected plain text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{what} holds a lone surrogate at character {err.start}; expected valid Unicode text") from None
    reserved = RESERVED.search(text)
    if reserved:
        raise ValueError(f"{what} contains {reserved.group(0)!r}: the official '<mask><pos>' and '<image>' "
                         "slots cannot be typed; refer to regions as <region1>, <region2>, ... (the image is "
                         "always given)")
    for digits in REGION_REF.findall(text):
        number = int(digits) if len(digits) <= 6 else None  # never parse a 5,000-digit number
        if number is None or not 1 <= number <= num_regions:
            number = number if number is not None else f"{digits[:6]}...({len(digits)} digits)"
            raise ValueError(f"{what} refers to <region{number}> but {num_regions} region(s) were given; "
                             f"expected <region1>..<region{num_regions}>" if num_regions else
                             f"{what} refers to <region{number}> but no region was given")
    return text


def question_text(question: str) -> str:
    """A mode name's official prompt, or ``question`` itself, which must name ``<region1>``."""
    text = QUESTIONS.get(question, question)
    if "<region1>" not in text:
        raise ValueError(f"question {question!r} is neither a mode ({', '.join(QUESTIONS)}) nor text with "
                         "<region1> (the region being described)")
    return text


def _as_queries(queries: Any) -> list[Query]:
    if isinstance(queries, Query):
        return [queries]
    queries = list(queries)
    for i, query in enumerate(queries):
        if not isinstance(query, Query):
            raise TypeError(f"queries[{i}] is a {type(query).__name__}; expected osprey.inference.predictor.Query")
    return queries
