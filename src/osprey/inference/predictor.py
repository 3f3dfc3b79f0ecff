"""Answer questions about regions of an image.

The image is encoded once (vision tower + projector + the four feature maps), each region's
tokens come from one pass of the mask extractor, and every query about the image is answered in
one batched, left-padded generation with a KV cache whose shared prefix (system prompt + image
tokens) is prefilled only once (see :mod:`osprey.inference.batch`).

    predictor = RegionPredictor(model, tokenizer)
    encoded = predictor.encode("photo.jpg")
    predictor.describe(encoded, masks)                                   # one answer per mask
    predictor.ask(encoded, masks, [Query("Is <region1> left of <region2>?", (0, 3))])
    for index, piece in predictor.stream(encoded, masks, queries): ...   # for servers
    chat = predictor.chat(encoded, masks); chat.send("What is <region1>?")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from osprey.image import load_image, preprocess
from osprey.inference.batch import BEGIN, EncodedImage, PreparedBatch, Query, prepare_batch, render_query
from osprey.inference.regions import MAX_REGIONS, check_masks
from osprey.inference.streaming import TextStream
from osprey.model.generation import DecodingOptions, decode_steps, generate
from osprey.model.osprey import OspreyModel
from osprey.text.conversation import Turn, get_template
from osprey.text.geometry import region_texts
from osprey.text.prompts import CATEGORY_QUESTION, DETAILED_DESCRIPTION_QUESTION, SHORT_DESCRIPTION_QUESTION
from osprey.text.tokenizer import TextTokenizer

__all__ = ["BEGIN", "QUESTIONS", "ChatSession", "DecodingOptions", "EncodedImage", "Query", "RegionPredictor"]

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
        pixels = preprocess(pil, vision.image_size, vision.mean, vision.std)[None].to(self._device)
        levels, tokens = self.model.encode_images(pixels)
        return EncodedImage(levels=levels, image_tokens=tokens, size=(pil.height, pil.width))

    def _encoded(self, image: ImageInput) -> EncodedImage:
        return image if isinstance(image, EncodedImage) else self.encode(image)

    @property
    def _device(self) -> torch.device:
        return self.model.language_model.get_input_embeddings().weight.device

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
    ) -> list[str]:
        """One answer per query, all generated in one batch.

        ``zero_regions`` replaces every region's ``<mask>``/``<pos>`` features with zeros (an
        evaluation ablation). ``on_token(query_index, text_piece)`` receives the answers' text as
        it is produced; each query's pieces concatenate to its returned answer.
        """
        queries = _as_queries(queries)
        if not queries:
            return []
        batch = self.prepare(image, masks, queries, zero_regions=zero_regions)
        if on_token is None:
            result = generate(self.model, batch.embeds, batch.attention_mask, eos_id=self.tokenizer.eos_id,
                              options=options, prefix_embeds=batch.prefix_embeds)
            return [self.tokenizer.decode(ids).strip() for ids in result.ids]
        streams = [TextStream(self.tokenizer) for _ in queries]
        for index, piece in self._pieces(batch, streams, options):
            on_token(index, piece)
        return [s.text for s in streams]

    def stream(
        self,
        image: ImageInput,
        masks: MasksInput,
        queries: Query | Sequence[Query],
        options: DecodingOptions | None = None,
        *,
        zero_regions: bool = False,
    ) -> Iterator[tuple[int, str]]:
        """Yield ``(query_index, text_piece)`` as the batch decodes (for server-sent events).

        Work starts at the first ``next()``; each query's pieces concatenate to its full answer.
        """
        queries = _as_queries(queries)
        if not queries:
            return
        with torch.no_grad():
            batch = self.prepare(image, masks, queries, zero_regions=zero_regions)
        streams = [TextStream(self.tokenizer) for _ in queries]
        yield from self._pieces(batch, streams, options)

    def _pieces(self, batch: PreparedBatch, streams: list[TextStream],
                options: DecodingOptions | None) -> Iterator[tuple[int, str]]:
        done = [False] * len(streams)
        steps = decode_steps(self.model, batch.embeds, batch.attention_mask, eos_id=self.tokenizer.eos_id,
                             options=options, prefix_embeds=batch.prefix_embeds)
        for step in steps:
            for row, token in step.tokens:
                piece = streams[row].push(token)
                if piece:
                    yield row, piece
            for row in step.ended:
                done[row] = True
                piece = streams[row].finish()
                if piece:
                    yield row, piece
        for row, stream in enumerate(streams):
            if not done[row]:  # stopped at max_new_tokens
                piece = stream.finish()
                if piece:
                    yield row, piece

    @torch.no_grad()
    def describe(
        self,
        image: ImageInput,
        masks: MasksInput,
        question: str = "short",
        options: DecodingOptions | None = None,
    ) -> list[str]:
        """One answer per mask (R, H, W). ``question`` is ``"short"``, ``"detailed"``, ``"category"``
        or text that names the region as ``<region1>``."""
        text = question_text(question)
        encoded = self._encoded(image)
        checked = check_masks(masks, encoded.size, max_regions=self.max_regions)
        queries = [Query(text, (i,)) for i in range(int(checked.shape[0]))]
        return self.ask(encoded, checked, queries, options)

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
             on_token: Callable[[str], None] | None = None) -> str:
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
