"""The model side of the server: a predictor, a mask provider, the scheduler and its cache.

The API runs each request's job on one of the worker's request threads (see
:mod:`osprey.serve.worker`); the model itself runs only on the :class:`~osprey.serve.scheduler.Scheduler`
thread, which decodes the rows of every running request together (continuous batching). The
request thread checks the prompt's length, hands the work over and waits for its answers (or,
streaming, turns its token ids into text pieces). ``cancelled()`` is asked by the scheduler before
every decoding step, so a request that times out or whose client went away stops within a token
(and raises :class:`~osprey.serve.worker.Cancelled`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from osprey.inference.batch import BEGIN, Query
from osprey.inference.cache import EncodingCache, image_key
from osprey.inference.predictor import RANDOM_WEIGHTS_NOTE, Answer, RegionPredictor, question_text
from osprey.inference.providers import MaskProvider, build_provider
from osprey.inference.streaming import TextStream
from osprey.model.generation import DecodingOptions
from osprey.model.loading import BUNDLED_NOTE, is_bundled
from osprey.serve.decoding import shrink
from osprey.serve.http import BadRequest
from osprey.serve.scheduler import END, Request, Scheduler
from osprey.serve.worker import Cancelled
from osprey.text.conversation import Turn

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass
class RegionService:
    predictor: RegionPredictor
    provider: MaskProvider
    model_name: str
    random_init: bool
    cache_bytes: int = 256 * MIB  # encoded images and prefix K/V kept (LRU), in bytes; 0: off
    max_prompt_tokens: int = 4096  # prefill budget: a longer prompt is refused before the model runs
    max_batch_rows: int = 16  # region rows decoded together across requests (1: one request at a time)
    kv_budget_bytes: int = 1024 * MIB  # worst-case KV of the running requests (a larger one runs alone)
    ignore_eos: bool = False  # every answer runs to max_new_tokens (fixed-length benchmarks)

    def __post_init__(self) -> None:
        self.provider = SerialProvider(self.provider)
        self.cache = EncodingCache(self.cache_bytes)
        self.text_lock = threading.Lock()  # the tokenizer is shared by request threads and the scheduler
        self.scheduler = Scheduler(self.predictor, self.cache, max_batch_rows=self.max_batch_rows,
                                   kv_budget_bytes=self.kv_budget_bytes, text_lock=self.text_lock)

    @property
    def dtype(self) -> str:
        """The precision the language model runs in (``"float32"``, ``"bfloat16"``, ...)."""
        return str(self.predictor.dtype).removeprefix("torch.")

    @property
    def note(self) -> str | None:
        """A warning for random weights; for the bundled model, what it knows and what else to load."""
        if self.random_init:
            return RANDOM_WEIGHTS_NOTE.format(spec=self.model_name)
        return BUNDLED_NOTE if is_bundled(self.model_name) else None

    def stats(self) -> dict:
        """The batch and the cache, for ``/healthz``."""
        return {"batch": self.scheduler.stats(), "cache": self.cache.stats()}

    # -- questions -----------------------------------------------------------------------------
    def describe(self, image: Image.Image, masks: np.ndarray, question: str, options: DecodingOptions,
                 cancelled: Callable[[], bool], *, prefix: str = BEGIN) -> list[Answer]:
        """One answer per mask; ``question`` is a mode (short/detailed/category) or text with <region1>;
        ``prefix`` the first-turn prefix (the demo style's, :mod:`osprey.inference.demo`)."""
        text = question_text(question)
        if len(masks):
            with self.text_lock:
                one = self.predictor.prompt_length(Query(text, (0,), prefix=prefix), masks[:1])
                tail = len(self.predictor.tokenizer.encode(text)) + 16
            self._check_prompt(one + (len(masks) - 1) * tail, f"{len(masks)} regions with this question")
        queries = [Query(text, (i,), prefix=prefix) for i in range(len(masks))]
        if not queries:
            return []
        return _finished(self._run(image, masks, queries, options, cancelled).future.result())

    def answer(self, image: Image.Image, masks: np.ndarray, history: Sequence[Turn], question: str,
               options: DecodingOptions, cancelled: Callable[[], bool], *, prefix: str = BEGIN) -> Answer:
        """The next assistant turn; ``<regionK>`` is the K-th of all ``masks``. It carries its usage."""
        query = self._chat_query(history, question, masks, prefix)
        return _finished(self._run(image, masks, [query], options, cancelled).future.result())[0]

    def stream(self, image: Image.Image, masks: np.ndarray, history: Sequence[Turn], question: str,
               options: DecodingOptions, cancelled: Callable[[], bool] | None = None, *,
               prefix: str = BEGIN) -> Iterator[str]:
        query = self._chat_query(history, question, masks, prefix)
        request = self._run(image, masks, [query], options, cancelled or (lambda: False), stream=True)
        text = TextStream(self.predictor.tokenizer)
        while (item := request.tokens.get()) is not END:
            if piece := text.push(item[1]):
                yield piece
        request.future.result()  # raises what failed the request (bad regions, a prompt error)
        if piece := text.finish():
            yield piece

    def _run(self, image: Image.Image, masks: np.ndarray, queries: list[Query], options: DecodingOptions,
             cancelled: Callable[[], bool], *, stream: bool = False) -> Request:
        if self.ignore_eos:
            options = dataclasses.replace(options, stop_at_eos=False)
        return self.scheduler.submit(Request(image, image_key(image), masks, queries, options, cancelled, stream))

    def _check_prompt(self, tokens: int, what: str) -> None:
        if tokens > self.max_prompt_tokens:
            raise BadRequest(f"{what} makes a prompt of about {tokens} tokens; at most {self.max_prompt_tokens} "
                             "are allowed (fewer regions, shorter messages)", status=413, param="messages",
                             code="prompt_too_long")

    def _chat_query(self, history: Sequence[Turn], question: str, masks: np.ndarray, prefix: str = BEGIN) -> Query:
        query = Query(question, tuple(range(len(masks))), tuple(history), prefix=prefix)
        with self.text_lock:
            length = self.predictor.prompt_length(query, masks)
        self._check_prompt(length, "the conversation")
        return query

    # -- masks ---------------------------------------------------------------------------------
    def segment(self, image: Image.Image, *, points: list | None = None, labels: list | None = None,
                box: list | None = None, everything: bool = False, provider_pixels: int | None = None,
                keep: int = 64) -> tuple[list[np.ndarray], float]:
        """(masks, scale): the provider runs on a copy of at most ``provider_pixels`` (its time and
        memory grow with the pixels), so the masks are at ``scale`` x the image's size (1.0: the
        image itself); "everything" keeps the ``keep`` largest non-empty segments."""
        small, scale = shrink(image, provider_pixels)
        if everything:
            return [m for m in self.provider.everything(small) if m.any()][:keep], scale
        if box is not None:
            return [self.provider.from_box(small, [v * scale for v in box])], scale
        scaled = [[min(x * scale, small.width - 1), min(y * scale, small.height - 1)] for x, y in points]
        return [self.provider.from_points(small, scaled, labels)], scale


def _finished(answers: list[Answer]) -> list[Answer]:
    """``answers``, unless generation stopped because the request was cancelled (deadline, client gone)."""
    if any(a.finish_reason == "cancelled" for a in answers):
        raise Cancelled("request cancelled (deadline passed or client gone)")
    return answers


class SerialProvider(MaskProvider):
    """A provider called by one request thread at a time (providers are not thread-safe)."""

    def __init__(self, inner: MaskProvider) -> None:
        self.inner = inner.inner if isinstance(inner, SerialProvider) else inner
        self.name = self.inner.name
        self._lock = threading.Lock()

    def from_points(self, image, points, labels=None):
        with self._lock:
            return self.inner.from_points(image, points, labels)

    def from_box(self, image, box):
        with self._lock:
            return self.inner.from_box(image, box)

    def everything(self, image):
        with self._lock:
            return self.inner.everything(image)


def load_service(model: str | None, *, sam_checkpoint=None, sam_type: str = "vit_b", max_regions: int = 32,
                 cache_bytes: int = 256 * MIB, device: str | None = "auto", dtype: str = "auto",
                 max_prompt_tokens: int = 4096, quantize: str = "none", max_batch_rows: int = 16,
                 kv_budget_bytes: int = 1024 * MIB, ignore_eos: bool = False) -> RegionService:
    """Load the model named by ``model`` (bundled, preset or folder; None: the default) and the mask
    provider, both on ``device`` (``auto``: a GPU when there is one); the model runs in ``dtype``
    (``auto``: as its weights are stored; float32, bfloat16, or float16 on a GPU)."""
    from osprey.model.loading import default_model_spec, load_model, resolve_device

    model = model or default_model_spec()
    where = resolve_device(device)
    network, tokenizer, random_init = load_model(model, device=where, dtype=dtype, quantize=quantize)
    provider = build_provider(sam_checkpoint, sam_type, device=str(where))  # no checkpoint: GrabCut
    predictor = RegionPredictor(network, tokenizer, max_regions=max(max_regions, 1))
    return RegionService(predictor, provider, str(model), random_init, cache_bytes, max_prompt_tokens,
                         max_batch_rows, kv_budget_bytes, ignore_eos)
