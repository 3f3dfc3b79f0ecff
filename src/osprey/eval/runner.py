"""The shared runner: every task lists requests, the runner answers them image by image, the task scores.

A task (one file per benchmark under :mod:`osprey.eval.tasks`) owns its data format, prompt and
metric. The runner groups requests by image so each image is encoded once, asks its questions in
batches through :meth:`RegionPredictor.ask`, shows a tqdm bar, and writes three outputs to the
run folder: ``predictions.jsonl`` (raw answers), ``metrics.json`` and ``results.md`` (the table it
also prints). Greedy decoding by default, so a rerun gives identical numbers; ``--sample`` uses the
official temperature 0.2 with an explicit seed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from osprey.inference.batch import Query
from osprey.masks import decode_segmentation, from_array

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
TABLE_FILE = "results.md"


@dataclass(frozen=True)
class Request:
    """One question about one image. ``regions`` are COCO segmentations (or (H, W) arrays) of the
    image, ``<regionK>`` in ``prompt`` is ``regions[K-1]``; ``meta`` travels to the scorer."""

    key: str
    image: Path
    size: tuple[int, int]  # (H, W) the annotations are in
    prompt: str
    regions: tuple[Any, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    request: Request
    text: str
    skipped: str | None = None  # why no generation ran (e.g. an empty mask)


@dataclass
class Scores:
    """What a task reports: headline metrics, extra tables, and per-request fields for the JSONL."""

    metrics: dict[str, Any]
    table: str
    per_request: dict[str, dict[str, Any]] = field(default_factory=dict)
    result_line: str | None = None


class Task:
    """A benchmark: ``requests()`` builds the questions, ``score(answers)`` the numbers."""

    name: str = "task"
    # Generate under fp16 autocast on CUDA, as the official script wraps generate() (OV-seg:
    # eval_open_vocab_seg_detectron2.py, ``torch.amp.autocast('cuda')``); no effect on the CPU.
    autocast_fp16: bool = False

    def requests(self) -> list[Request]:
        raise NotImplementedError

    def score(self, answers: list[Answer]) -> Scores:
        raise NotImplementedError


def request_query(request: Request, regions: tuple[int, ...]) -> Query:
    """The query of a request, whose prompt is the whole first user turn, ``<image>`` included.

    The official prompts differ in their prefix (POPE: ``"<image>\\n" + question``; OV-seg, RefCOCOg,
    Ferret: ``"<image>\\n.\\nThis provides..."``; see :mod:`osprey.text.prompts`), so each task writes
    its own and the query adds none (``prefix=""``) instead of taking the default one for granted.
    """
    if "<image>" not in request.prompt:
        raise ValueError(f"verbatim prompt {request.prompt[:60]!r} has no <image>; expected the full first turn")
    return Query(request.prompt, regions, prefix="")


def decode_region(region: Any, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool mask of a COCO segmentation or an array, through :mod:`osprey.masks`."""
    height, width = size
    if isinstance(region, np.ndarray):
        return from_array(region, height, width)
    return decode_segmentation(region, height, width)


def group_by_image(requests: Sequence[Request]) -> list[tuple[Path, list[Request]]]:
    """Requests per image, images in first-seen order, requests in their order."""
    groups: dict[Path, list[Request]] = {}
    for r in requests:
        groups.setdefault(r.image, []).append(r)
    return list(groups.items())


def answer_requests(
    predictor,
    requests: Sequence[Request],
    options,
    *,
    batch_size: int = 8,
    zero_regions: bool = False,
    progress: bool = True,
    desc: str = "eval",
) -> list[Answer]:
    """Answer every request; one image encoding per image, ``batch_size`` queries per generation."""
    from tqdm import tqdm

    from osprey.image import load_image

    answers: dict[str, Answer] = {}
    max_regions = getattr(predictor, "max_regions", None) or 10**9
    bar = tqdm(total=len(requests), desc=desc, unit="q", disable=not progress)
    for image_path, group in group_by_image(requests):
        _answer_image(predictor, load_image(image_path), group, options, answers, bar.update,
                      batch_size=batch_size, max_regions=max_regions, zero_regions=zero_regions)
    bar.close()
    return [answers[r.key] for r in requests]


def _answer_image(predictor, pil, group: list[Request], options, answers: dict[str, Answer],
                  advance: Callable[[int], Any], *, batch_size: int, max_regions: int, zero_regions: bool) -> None:
    """Answer one image's requests: encode once, then batches of <= ``batch_size`` queries and
    <= ``max_regions`` masks. A request with an empty mask is answered "" and marked skipped."""
    encoded = None
    masks: list[np.ndarray] = []
    queries: list[Query] = []
    asked: list[Request] = []

    def flush() -> None:
        nonlocal encoded
        if queries:
            encoded = encoded or predictor.encode(pil)
            stack = np.stack(masks) if masks else np.zeros((0, pil.height, pil.width), dtype=bool)
            texts = predictor.ask(encoded, stack, queries, options, zero_regions=zero_regions)
            for r, text in zip(asked, texts):
                answers[r.key] = Answer(r, text)
            advance(len(queries))
        masks.clear()
        queries.clear()
        asked.clear()

    for r in group:
        if (pil.height, pil.width) != tuple(r.size):
            raise ValueError(f"{r.key}: annotation size {r.size} but image {r.image} is {(pil.height, pil.width)}")
        decoded = [decode_region(seg, r.size) for seg in r.regions]
        if any(not m.any() for m in decoded):
            answers[r.key] = Answer(r, "", skipped="empty mask")
            advance(1)
            continue
        if len(decoded) > max_regions:
            raise ValueError(f"{r.key}: {len(decoded)} regions in one question; the predictor takes {max_regions}")
        if len(queries) >= batch_size or len(masks) + len(decoded) > max_regions:
            flush()
        indices = tuple(range(len(masks), len(masks) + len(decoded)))
        masks.extend(decoded)
        queries.append(request_query(r, indices))
        asked.append(r)
    flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN -> None so metrics.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_outputs(out_dir: Path, task: Task, answers: list[Answer], scores: Scores, run_info: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as f:
        for a in answers:
            record = {"key": a.request.key, "image": str(a.request.image), "prompt": a.request.prompt,
                      "answer": a.text, **({"skipped": a.skipped} if a.skipped else {}),
                      **scores.per_request.get(a.request.key, {})}
            f.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
    payload = {"task": task.name, **run_info, "metrics": _clean(scores.metrics)}
    (out_dir / METRICS_FILE).write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    (out_dir / TABLE_FILE).write_text(scores.table + "\n")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def generation_autocast(task: Task, predictor):
    """fp16 autocast around generation for a task that asks for it, on a CUDA device only."""
    import contextlib

    import torch

    device = getattr(predictor, "device", torch.device("cpu"))
    if task.autocast_fp16 and torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def run_task(
    task: Task,
    predictor,
    options,
    out_dir: Path,
    *,
    batch_size: int = 8,
    zero_regions: bool = False,
    progress: bool = True,
    run_info: dict | None = None,
    echo: Callable[[str], None] = print,
) -> Scores:
    """Requests -> answers -> scores -> the three output files; prints the table."""
    start = time.perf_counter()
    requests = task.requests()
    with generation_autocast(task, predictor):
        answers = answer_requests(predictor, requests, options, batch_size=batch_size, zero_regions=zero_regions,
                                  progress=progress, desc=task.name)
    scores = task.score(answers)
    info = {**(run_info or {}), "requests": len(requests),
            "skipped": sum(a.skipped is not None for a in answers),
            "seconds": round(time.perf_counter() - start, 2)}
    write_outputs(out_dir, task, answers, scores, info)
    echo(scores.table)
    if scores.result_line:
        echo(scores.result_line)
    return scores
