"""Continuous batching: one thread owns the model and decodes the rows of every running request.

Each loop (a) admits waiting requests, in arrival order, while the running rows stay within
``max_batch_rows`` and their worst-case KV within ``kv_budget_bytes`` (a request that alone
exceeds either runs when nothing else does): its image is encoded (or found in the
:class:`~osprey.inference.cache.EncodingCache`), its prompt prepared and prefilled on its own
(the prefix's K/V reused from the cache when the same prefix was seen), its rows join the running
batch; (b) runs one decoding step for every running row (:class:`~osprey.model.continuous.RunningBatch`);
(c) hands each request its tokens, retires finished and cancelled rows at once and completes their
requests. A request that fails (bad regions, a prompt error) fails alone; the others run on.

Greedy rows of all requests are picked by one argmax; a sampling request picks its rows with its
own ``torch.Generator`` seeded from its options, so it is reproducible whatever runs beside it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from osprey.inference.batch import Query
from osprey.inference.cache import EncodingCache, prefix_key
from osprey.inference.predictor import Answer, FinishReason, RegionPredictor
from osprey.model.continuous import Prefilled, RunningBatch, prefill
from osprey.model.generation import DecodingOptions, pick_tokens

log = logging.getLogger(__name__)

END = object()  # the last item of a streaming request's token queue


@dataclass(eq=False)
class Request:
    """One request's model work: its image (and content key), masks, queries, options."""

    image: Image.Image
    key: str
    masks: np.ndarray
    queries: Sequence[Query]
    options: DecodingOptions
    cancelled: Callable[[], bool]
    stream: bool = False  # put every (query index, token id) on ``tokens`` as it comes
    future: Future = field(default_factory=Future)  # the list of Answers, or the exception
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    # set while running:
    ids: list[list[int]] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)
    rows: list[int] = field(default_factory=list)  # running row ids, in query order
    alive: list[int] = field(default_factory=list)  # the query index of each running row
    lengths: list[int] = field(default_factory=list)
    reserved: int = 0  # KV bytes set aside for it
    generator: torch.Generator | None = None


class Scheduler:
    """The model's one thread. ``submit`` queues a :class:`Request`; its future completes with one
    :class:`~osprey.inference.predictor.Answer` per query."""

    def __init__(self, predictor: RegionPredictor, cache: EncodingCache, *, max_batch_rows: int = 16,
                 kv_budget_bytes: int = 1 << 30, text_lock: threading.Lock | None = None) -> None:
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows={max_batch_rows}: expected >= 1")
        self.predictor, self.cache = predictor, cache
        self.max_batch_rows, self.kv_budget_bytes = max_batch_rows, kv_budget_bytes
        self.text_lock = text_lock or threading.Lock()
        self.eos_id = predictor.tokenizer.eos_id
        config = predictor.model.language_model.config
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        element = torch.finfo(predictor.dtype).bits // 8
        self.kv_bytes_per_token = 2 * config.num_hidden_layers * heads * head_dim * element
        self._waiting: deque[Request] = deque()
        self._running: list[Request] = []
        self._reserved = 0
        self._wake = threading.Condition()
        self._batch: RunningBatch | None = None
        self._thread: threading.Thread | None = None
        self.steps = 0
        self.peak_rows = 0  # the most rows one decoding step has run

    # -- the caller's side ---------------------------------------------------------------------
    def submit(self, request: Request) -> Request:
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="osprey-scheduler", daemon=True)
                self._thread.start()
            self._waiting.append(request)
            self._wake.notify()
        return request

    def stats(self) -> dict[str, int]:
        return {"running_requests": len(self._running), "running_rows": sum(len(r.rows) for r in self._running),
                "waiting_requests": len(self._waiting), "max_batch_rows": self.max_batch_rows,
                "kv_reserved_bytes": self._reserved, "kv_budget_bytes": self.kv_budget_bytes,
                "decode_steps": self.steps, "peak_rows": self.peak_rows}

    # -- the model thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        self._batch = RunningBatch(self.predictor.model)
        while True:
            with self._wake:
                while not self._waiting and not self._running:
                    self._wake.wait()
            try:
                self._admit()
                self._retire_cancelled()
                if self._batch.rows:
                    self._step()
            except Exception as err:  # a failure of the shared step: every running request gets it
                log.exception("decoding step failed")
                for request in list(self._running):
                    self._finish(request, err)
                self._batch = RunningBatch(self.predictor.model)

    def _admit(self) -> None:
        while True:
            with self._wake:
                if not self._waiting:
                    return
                request = self._waiting[0]
                rows = sum(len(r.rows) for r in self._running)
                need = self._kv_need(request)
                if self._running and (rows + len(request.queries) > self.max_batch_rows
                                      or self._reserved + need > self.kv_budget_bytes):
                    return  # arrival order: nothing overtakes the first waiting request
                self._waiting.popleft()
            if not request.future.set_running_or_notify_cancel():  # the caller dropped it
                request.tokens.put(END)
                continue
            if request.cancelled():
                self._settle(request)
                continue
            try:
                group = self._prefill(request)
                if group is None:  # cancelled between prefill chunks
                    self._settle(request)
                    continue
                request.rows = self._batch.join(group)
            except Exception as err:  # this request fails alone (bad masks, a prompt error)
                request.future.set_exception(err)
                request.tokens.put(END)
                continue
            request.alive = list(range(len(request.rows)))
            request.reserved = need
            self._reserved += need
            self._running.append(request)
            self._take(request, group.logits)

    def _kv_need(self, request: Request) -> int:
        """Worst-case KV bytes of ``request``: its prompt (estimated from its text) and every answer in full."""
        per_row = self.predictor.model.num_image_tokens + 64 + request.options.max_new_tokens
        return len(request.queries) * per_row * self.kv_bytes_per_token

    @torch.no_grad()
    def _prefill(self, request: Request) -> Prefilled | None:
        encoded = self.cache.image(request.key)
        if encoded is None:
            encoded = self.predictor.encode(request.image)
            self.cache.put_image(request.key, encoded)
        with self.text_lock:
            batch = self.predictor.prepare(encoded, request.masks, list(request.queries))
        request.lengths = batch.lengths
        cached, key = None, None
        if batch.prefix_embeds is not None:
            key = prefix_key(request.key, batch.prefix_ids)
            cached = self.cache.prefix(key)
        group = prefill(self.predictor.model, batch.embeds, batch.attention_mask, batch.prefix_embeds,
                        prefix_kv=cached, cancel=request.cancelled)
        if group is not None and cached is None and group.prefix is not None:
            self.cache.put_prefix(key, group.prefix)
        options = request.options
        request.ids = [[] for _ in request.queries]
        if options.do_sample:
            request.generator = torch.Generator(device=group.logits.device if group is not None else "cpu")
            request.generator.manual_seed(0 if options.seed is None else options.seed)
        return group

    def _step(self) -> None:
        last = [request.ids[query][-1] for request in self._running for query in request.alive]
        logits = self._batch.step(torch.tensor(last, dtype=torch.long, device=self._batch.device))  # (A, V)
        self.steps += 1
        self.peak_rows = max(self.peak_rows, len(last))
        start = 0
        for request in list(self._running):  # their rows, in order, are the batch's rows
            count = len(request.rows)
            self._take(request, logits[start:start + count])
            start += count

    def _take(self, request: Request, logits: torch.Tensor) -> None:
        """Pick ``request``'s next tokens from its rows' (n, V) logits; retire rows that are done."""
        options = request.options
        picked = pick_tokens(logits, options, request.generator).tolist()
        done: set[int] = set()
        for row, query, token in zip(request.rows, request.alive, picked, strict=True):
            if options.stop_at_eos and token == self.eos_id:
                request.ended.add(query)
                done.add(row)
                continue
            request.ids[query].append(token)
            if request.stream:
                request.tokens.put((query, token))
            if len(request.ids[query]) >= options.max_new_tokens:
                done.add(row)
        if not done:
            return
        request.alive = [q for row, q in zip(request.rows, request.alive, strict=True) if row not in done]
        request.rows = [row for row in request.rows if row not in done]
        self._batch.leave(list(done))
        if not request.rows:
            self._finish(request, None)

    def _retire_cancelled(self) -> None:
        with self._wake:  # a waiting request past its deadline leaves the queue at once
            gone = [r for r in self._waiting if r.cancelled()]
            for request in gone:
                self._waiting.remove(request)
        for request in gone:
            if request.future.set_running_or_notify_cancel():
                self._settle(request)
            else:
                request.tokens.put(END)
        for request in list(self._running):
            if request.cancelled():
                self._finish(request, None)

    def _finish(self, request: Request, err: BaseException | None) -> None:
        if request in self._running:
            self._running.remove(request)
            self._reserved -= request.reserved
        if request.rows:
            self._batch.leave(list(request.rows))
            request.rows = []
        if err is not None:
            request.future.set_exception(err)
        else:
            request.future.set_result(self._answers(request))
        request.tokens.put(END)

    def _settle(self, request: Request) -> None:
        """A request stopped before any row ran: every answer empty and cancelled."""
        request.ids = [[] for _ in request.queries]
        request.future.set_result(self._answers(request))
        request.tokens.put(END)

    def _answers(self, request: Request) -> list[Answer]:
        tokenizer, cap = self.predictor.tokenizer, request.options.max_new_tokens
        lengths = request.lengths or [0] * len(request.queries)
        answers = []
        for query, (ids, length) in enumerate(zip(request.ids, lengths, strict=True)):
            reason: FinishReason = ("stop" if query in request.ended else "length" if len(ids) >= cap else "cancelled")
            answers.append(Answer(tokenizer.decode(ids).strip(), prompt_tokens=length, completion_tokens=len(ids),
                                  finish_reason=reason))
        return answers
