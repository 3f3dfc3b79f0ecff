"""The model side of the server: a predictor, a mask provider, an encoded-image cache.

Every method runs on the one model worker thread (see :mod:`osprey.serve.worker`); the API code
never touches the model directly. ``cancelled()`` is asked before every decoding step, so a request
that times out or whose client went away stops within a token (and raises
:class:`~osprey.serve.worker.Cancelled`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from osprey.inference.batch import BEGIN, EncodedImage, Query
from osprey.inference.predictor import RANDOM_WEIGHTS_NOTE, Answer, RegionPredictor, question_text
from osprey.inference.providers import MaskProvider, build_provider
from osprey.model.generation import DecodingOptions
from osprey.serve.decoding import shrink
from osprey.serve.http import BadRequest
from osprey.serve.worker import Cancelled
from osprey.text.conversation import Turn

log = logging.getLogger(__name__)


@dataclass
class RegionService:
    predictor: RegionPredictor
    provider: MaskProvider
    model_name: str
    random_init: bool
    encode_cache: int = 4
    max_prompt_tokens: int = 4096  # prefill budget: a longer prompt is refused before the model runs

    def __post_init__(self) -> None:
        self._encoded: OrderedDict[str, EncodedImage] = OrderedDict()

    @property
    def dtype(self) -> str:
        """The precision the language model runs in (``"float32"``, ``"bfloat16"``, ...)."""
        return str(self.predictor.dtype).removeprefix("torch.")

    @property
    def note(self) -> str | None:
        return RANDOM_WEIGHTS_NOTE.format(spec=self.model_name) if self.random_init else None

    # -- images --------------------------------------------------------------------------------
    def encode(self, image: Image.Image) -> EncodedImage:
        """The encoded image, from a small LRU cache keyed by the pixels (the demo asks repeatedly)."""
        key = hashlib.sha1(image.tobytes() + repr(image.size).encode()).hexdigest()
        if key in self._encoded:
            self._encoded.move_to_end(key)
            return self._encoded[key]
        encoded = self.predictor.encode(image)
        self._encoded[key] = encoded
        while len(self._encoded) > self.encode_cache:
            self._encoded.popitem(last=False)
        return encoded

    # -- questions -----------------------------------------------------------------------------
    def describe(self, image: Image.Image, masks: np.ndarray, question: str, options: DecodingOptions,
                 cancelled: Callable[[], bool], *, prefix: str = BEGIN) -> list[Answer]:
        """One answer per mask; ``question`` is a mode (short/detailed/category) or text with <region1>;
        ``prefix`` the first-turn prefix (the demo style's, :mod:`osprey.inference.demo`)."""
        if len(masks):
            one = self.predictor.prompt_length(Query(question_text(question), (0,), prefix=prefix), masks[:1])
            tail = len(self.predictor.tokenizer.encode(question_text(question))) + 16
            self._check_prompt(one + (len(masks) - 1) * tail, f"{len(masks)} regions with this question")
        answers = self.predictor.describe(self.encode(image), masks, question, options, cancel=cancelled,
                                          prefix=prefix)
        return _finished(answers)

    def answer(self, image: Image.Image, masks: np.ndarray, history: Sequence[Turn], question: str,
               options: DecodingOptions, cancelled: Callable[[], bool], *, prefix: str = BEGIN) -> Answer:
        """The next assistant turn; ``<regionK>`` is the K-th of all ``masks``. It carries its usage."""
        query = self._chat_query(history, question, len(masks), prefix)
        self._check_prompt(self.predictor.prompt_length(query, masks), "the conversation")
        return _finished(self.predictor.ask(self.encode(image), masks, [query], options, cancel=cancelled))[0]

    def stream(self, image: Image.Image, masks: np.ndarray, history: Sequence[Turn], question: str,
               options: DecodingOptions, cancelled: Callable[[], bool] | None = None, *,
               prefix: str = BEGIN) -> Iterator[str]:
        query = self._chat_query(history, question, len(masks), prefix)
        self._check_prompt(self.predictor.prompt_length(query, masks), "the conversation")
        for _index, piece in self.predictor.stream(self.encode(image), masks, [query], options, cancel=cancelled):
            yield piece

    def _check_prompt(self, tokens: int, what: str) -> None:
        if tokens > self.max_prompt_tokens:
            raise BadRequest(f"{what} makes a prompt of about {tokens} tokens; at most {self.max_prompt_tokens} "
                             "are allowed (fewer regions, shorter messages)", status=413, param="messages",
                             code="prompt_too_long")

    @staticmethod
    def _chat_query(history: Sequence[Turn], question: str, regions: int, prefix: str = BEGIN) -> Query:
        return Query(question, tuple(range(regions)), tuple(history), prefix=prefix)

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


def load_service(model: str | None, *, sam_checkpoint=None, sam_type: str = "vit_b", max_regions: int = 32,
                 encode_cache: int = 4, device: str | None = "auto", dtype: str = "auto",
                 max_prompt_tokens: int = 4096, quantize: str = "none") -> RegionService:
    """Load the model named by ``model`` (bundled, preset or folder; None: the default) and the mask
    provider, both on ``device`` (``auto``: a GPU when there is one); the model runs in ``dtype``
    (``auto``: as its weights are stored; float32, bfloat16, or float16 on a GPU)."""
    from osprey.model.loading import default_model_spec, load_model, resolve_device

    model = model or default_model_spec()
    where = resolve_device(device)
    network, tokenizer, random_init = load_model(model, device=where, dtype=dtype, quantize=quantize)
    provider = build_provider(sam_checkpoint, sam_type, device=str(where))  # no checkpoint: GrabCut
    predictor = RegionPredictor(network, tokenizer, max_regions=max(max_regions, 1))
    return RegionService(predictor, provider, str(model), random_init, encode_cache, max_prompt_tokens)


