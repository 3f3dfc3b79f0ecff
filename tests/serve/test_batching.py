"""Continuous batching: every request's answer is the one it gets alone, whoever runs beside it.

The tiny preset's LLM is redrawn with std 0.2 (as in tests/inference/conftest.py) so answers
differ between images, regions and steps: a row that saw another row's keys, or the wrong
positions, would answer differently. Requests go straight to a :class:`Scheduler`; arrivals are
interleaved by waiting for a running request's tokens before submitting the next.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from osprey.inference.batch import Query
from osprey.inference.cache import EncodingCache, image_key
from osprey.inference.predictor import RegionPredictor
from osprey.inference.regions import RegionError
from osprey.model.generation import DecodingOptions
from osprey.serve.scheduler import END, Request, Scheduler
from tiny_models import scrambled_tiny

GREEDY = DecodingOptions(max_new_tokens=12, stop_at_eos=False)


@pytest.fixture(scope="module")
def predictor() -> RegionPredictor:
    return RegionPredictor(*scrambled_tiny(1))


def picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8))


def boxes(count: int, shift: int = 0) -> np.ndarray:
    masks = np.zeros((count, 48, 64), bool)
    for i in range(count):
        masks[i, 4 + 3 * i + shift:30 + shift, 5 * i:40 + 2 * i] = True
    return masks


def request(seed: int, regions: int = 1, options: DecodingOptions = GREEDY, *, text: str = "What is <region1>?",
            cancelled=lambda: False, stream: bool = False, masks: np.ndarray | None = None) -> Request:
    image = picture(seed)
    masks = boxes(regions, seed % 5) if masks is None else masks
    queries = [Query(text, (i,)) for i in range(len(masks))]
    return Request(image, image_key(image), masks, queries, options, cancelled, stream)


def scheduler(predictor: RegionPredictor, rows: int = 16, **kwargs) -> Scheduler:
    return Scheduler(predictor, EncodingCache(kwargs.pop("cache_bytes", 64 << 20)), max_batch_rows=rows, **kwargs)


def alone(predictor: RegionPredictor, make) -> list[list[str]]:
    """Each request served by itself (a fresh scheduler, nothing else running, no cache)."""
    out = []
    for req in make():
        out.append(list(scheduler(predictor, cache_bytes=0).submit(req).future.result(timeout=120)))
    return out


def wait_tokens(req: Request, count: int) -> None:
    for _ in range(count):
        assert req.tokens.get(timeout=60) is not END


def staggered(sched: Scheduler, requests: list[Request], after: int = 3) -> list[list[str]]:
    """Submit each request once the previous one has streamed ``after`` tokens: joins mid-decode."""
    for index, req in enumerate(requests):
        sched.submit(req)
        if index < len(requests) - 1 and req.stream:
            wait_tokens(req, after)
    return [list(req.future.result(timeout=120)) for req in requests]


def test_interleaved_arrivals_answer_as_alone(predictor) -> None:
    def make():
        return [request(seed, regions=1 + seed % 3, stream=True) for seed in range(5)]

    expected = alone(predictor, make)
    assert len({a for answers in expected for a in answers}) > 3  # answers differ: the test can fail
    sched = scheduler(predictor)
    assert staggered(sched, make()) == expected
    assert sched.peak_rows > 3  # rows of several requests really ran in one step


def test_answers_match_the_predictor(predictor) -> None:
    """The scheduler's prefill (prefix pass, then rows) answers as the predictor's one-pass batch."""
    req = request(3, regions=3)
    direct = predictor.ask(req.image, req.masks, list(req.queries), GREEDY)
    assert list(scheduler(predictor).submit(req).future.result(timeout=120)) == list(direct)


def test_row_limit_and_kv_budget_bound_the_batch(predictor) -> None:
    def make():
        return [request(seed) for seed in range(4)]

    expected = alone(predictor, make)
    two = scheduler(predictor, rows=2)
    assert [list(r.future.result(timeout=120)) for r in [two.submit(r) for r in make()]] == expected
    assert two.peak_rows == 2
    tight = scheduler(predictor, kv_budget_bytes=1)  # every request alone exceeds it: one at a time
    assert [list(r.future.result(timeout=120)) for r in [tight.submit(r) for r in make()]] == expected
    assert tight.peak_rows == 1


def test_cancellation_mid_batch_leaves_the_others_intact(predictor) -> None:
    def make(stop):
        return [request(0, stream=True), request(1, regions=2, stream=True, cancelled=stop.is_set),
                request(2, stream=True)]

    expected = alone(predictor, lambda: make(threading.Event()))
    stop = threading.Event()
    sched = scheduler(predictor)
    reqs = make(stop)
    sched.submit(reqs[0])
    wait_tokens(reqs[0], 2)
    sched.submit(reqs[1])
    wait_tokens(reqs[1], 3)
    sched.submit(reqs[2])
    stop.set()
    results = [list(r.future.result(timeout=120)) for r in reqs]
    assert results[0] == expected[0] and results[2] == expected[2]
    cut = results[1]
    assert {a.finish_reason for a in cut} == {"cancelled"}
    assert all(a.completion_tokens < GREEDY.max_new_tokens for a in cut)


def test_a_failing_request_fails_alone(predictor) -> None:
    def make():
        return [request(0, stream=True), request(1), request(2)]

    expected = alone(predictor, make)
    sched = scheduler(predictor)
    good = make()
    bad = request(4, masks=np.zeros((1, 10, 10), bool))  # masks not at the image's size
    sched.submit(good[0])
    wait_tokens(good[0], 2)
    for req in (good[1], bad, good[2]):
        sched.submit(req)
    with pytest.raises(RegionError, match="48"):
        bad.future.result(timeout=120)
    assert [list(r.future.result(timeout=120)) for r in good] == expected


def test_sampling_is_reproducible_per_request(predictor) -> None:
    sampled = DecodingOptions(max_new_tokens=10, do_sample=True, temperature=1.0, seed=7, stop_at_eos=False)

    def make():
        return [request(0, stream=True), request(1, regions=2, options=sampled, stream=True), request(2)]

    expected = alone(predictor, make)
    assert staggered(scheduler(predictor), make(), after=2) == expected
    other_seed = DecodingOptions(**{**sampled.__dict__, "seed": 8})
    assert alone(predictor, lambda: [request(1, regions=2, options=other_seed)])[0] != expected[1]


def test_eos_ends_a_row_and_its_request_completes(predictor) -> None:
    eos = predictor.tokenizer.eos_id
    stopping = DecodingOptions(max_new_tokens=40)  # stop_at_eos: a row leaves at EOS, others run on
    reqs = [request(seed, regions=2, options=stopping) for seed in range(3)]
    sched = scheduler(predictor)
    results = [r.future.result(timeout=120) for r in [sched.submit(r) for r in reqs]]
    for req, answers in zip(reqs, results, strict=True):
        assert len(answers) == 2
        for ids, answer in zip(req.ids, answers, strict=True):
            assert eos not in ids
            assert answer.finish_reason == ("stop" if len(ids) < 40 else "length")
    assert not sched.stats()["running_rows"] and sched.stats()["kv_reserved_bytes"] == 0


def test_the_cache_reuses_image_and_prefix(predictor) -> None:
    sched = scheduler(predictor)
    first = list(sched.submit(request(5, regions=2)).future.result(timeout=120))
    stats = sched.cache.stats()
    assert (stats["image_misses"], stats["prefix_misses"], stats["image_hits"]) == (1, 1, 0)
    again = list(sched.submit(request(5, regions=2)).future.result(timeout=120))  # same pixels, new objects
    stats = sched.cache.stats()
    assert (stats["image_hits"], stats["prefix_hits"]) == (1, 1) and stats["prefix_hit_rate"] == 0.5
    assert again == first  # the cached prefix K/V give the same answers
    assert 0 < stats["bytes"] <= stats["max_bytes"]
    sched.submit(request(6)).future.result(timeout=120)
    assert sched.cache.stats()["image_misses"] == 2  # other pixels: another key


def test_the_cache_is_bounded_in_bytes(predictor) -> None:
    encoded = predictor.encode(picture(0))
    size = sum(t.nbytes for t in encoded.levels) + encoded.image_tokens.nbytes
    cache = EncodingCache(2 * size + 1)
    for key in "abc":
        cache.put_image(key, encoded)
    assert cache.image("a") is None and cache.image("b") is encoded  # the oldest went first
    cache.put_image("d", encoded)
    assert cache.image("c") is None and cache.image("b") is encoded  # "b" was used: "c" was older
    assert cache.bytes == 2 * size
    too_big = EncodingCache(size - 1)
    too_big.put_image("a", encoded)
    assert too_big.image("a") is None and too_big.bytes == 0
    with pytest.raises(ValueError, match="max_bytes=-1"):
        EncodingCache(-1)
