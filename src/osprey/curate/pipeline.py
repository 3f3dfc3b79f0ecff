"""Ask a chat model about every image's regions and turn the replies into Osprey-724K records.

One job = one (task, image) prompt. Answers go, as they arrive, to ``OUT/answers.jsonl`` (one JSON
line per answer, flushed and fsynced; a truncated last line from a killed run is cut off at the
next start), so a run that is killed or interrupted loses nothing it was already answered and a
rerun asks only what is still missing. Once every job has an answer (or failed), all answers are
read into records; each record is checked by parsing it with our own Osprey-724K parser, and every
reply or record that is refused is written to ``OUT/rejected.jsonl`` with its task, image and reason.

Outputs in ``OUT``: ``osprey_detail_description.json``, ``osprey_conversation.json``,
``osprey_short_form.json`` (the official file names and layout, for the tasks run),
``rejected.jsonl``, ``report.json`` (counts per task and per problem), ``answers.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from osprey.chat_client import ChatClientError, cache_key
from osprey.curate.context import ImageContext
from osprey.curate.prompts import (
    OUTPUT_FILES,
    PARSER_NAMES,
    SHORT_ANSWER_MAX_WORDS,
    TASKS,
    QAPair,
    ReplyError,
    build_messages,
    parse_description_reply,
    parse_qa_reply,
)
from osprey.data.errors import RecordError
from osprey.data.parsers import get_parser, parse_one

log = logging.getLogger(__name__)

ANSWERS_FILE = "answers.jsonl"
REJECTED_FILE = "rejected.jsonl"
REPORT_FILE = "report.json"
REQUEST_FAILED = "request_failed"
DEFAULT_PARAMS: dict[str, Any] = {"temperature": 0.7, "max_tokens": 1024}


class ChatBackend(Protocol):
    def complete(self, messages: list[dict[str, str]], **params: Any) -> str: ...


@dataclass(frozen=True)
class Job:
    """One prompt: ``task`` about ``context``; ``key`` identifies it across runs."""

    task: str
    context: ImageContext
    key: str
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Rejection:
    """A job that gave no record, and why."""

    task: str
    image_id: int
    file_name: str
    problem: str
    reason: str
    reply: str | None = None


@dataclass
class TaskCounts:
    jobs: int = 0
    resumed: int = 0  # answered by an earlier run (read from answers.jsonl)
    asked: int = 0  # answered in this run
    failed: int = 0  # request failed for good in this run (asked again by the next run)
    records: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # problem -> count


@dataclass
class CurationReport:
    out_dir: str
    tasks: dict[str, TaskCounts] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    ignored_lines: int = 0  # unreadable lines of answers.jsonl (a killed run's partial last line)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": self.out_dir,
            "ignored_answer_lines": self.ignored_lines,
            "tasks": {
                task: {**asdict(c), "rejected": dict(sorted(c.rejected.items()))}
                for task, c in self.tasks.items()
            },
            "num_rejected": len(self.rejections),
        }

    def format(self) -> str:
        lines = [f"curation in {self.out_dir}"]
        for task, c in self.tasks.items():
            rejected = ", ".join(f"{k} {n}" for k, n in sorted(c.rejected.items())) or "none"
            lines.append(
                f"  {task}: {c.jobs} prompts ({c.resumed} answered before, {c.asked} asked now, {c.failed} failed); "
                f"{c.records} records; rejected: {rejected}"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Progress file


class AnswerLog:
    """Append-only JSONL of answers; reading it tolerates (and cuts off) a truncated last line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> tuple[dict[str, dict[str, Any]], int]:
        """``{key: entry}`` of the answers on disk and the number of unreadable lines ignored."""
        if not self.path.exists():
            return {}, 0
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a write cut short by a kill: drop the partial line
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a truncated last line (%d bytes)", self.path, len(data) - keep)
            with self.path.open("r+b") as f:
                f.truncate(keep)
            ignored, data = 1, data[:keep]
        else:
            ignored = 0
        answers = {}
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            try:
                entry = json.loads(line)
                answers[entry["key"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                log.warning(
                    "%s: line %d is unreadable; ignored (its prompt will be asked again)", self.path, n
                )
                ignored += 1
        return answers, ignored

    def append(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------------
# Jobs, records


def backend_name(backend: Any) -> str:
    """The model name a backend answers as (part of every job key)."""
    return str(getattr(backend, "model", None) or getattr(backend, "path", None) or type(backend).__name__)


def build_jobs(
    contexts: Sequence[ImageContext], tasks: Sequence[str], *, model: str, params: Mapping[str, Any]
) -> list[Job]:
    """Every (task, image) prompt, task by task, images in order."""
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    jobs = []
    for task in tasks:
        for context in contexts:
            messages = build_messages(task, context)
            jobs.append(Job(task, context, cache_key(model, messages, params), messages))
    return jobs


def base_record(context: ImageContext) -> dict[str, Any]:
    return {
        "id": context.image_id,
        "file_name": context.file_name,
        "height": context.height,
        "width": context.width,
        "annotation": [{"bbox": r.bbox, "segmentation": r.segmentation} for r in context.regions],
    }


def reply_to_record(task: str, context: ImageContext, reply: str) -> dict[str, Any]:
    """The Osprey-724K record for one reply; :class:`ReplyError` if the reply does not fit."""
    record = base_record(context)
    n = len(context.regions)
    if task == "description":
        record["description"] = parse_description_reply(reply, n)
        return record
    limit = SHORT_ANSWER_MAX_WORDS if task == "short_form" else None
    record["conversations"] = qa_conversations(parse_qa_reply(reply, n, max_answer_words=limit))
    return record


def qa_conversations(pairs: Iterable[QAPair]) -> list[dict[str, str]]:
    out = []
    for pair in pairs:
        out += [{"from": "human", "value": pair.question}, {"from": "gpt", "value": pair.answer}]
    return out


def check_record(task: str, record: Mapping[str, Any], index: int) -> None:
    """Raise :class:`RecordError` unless our own parser for the task reads ``record``."""
    parse_one(get_parser(PARSER_NAMES[task]), record, rng=random.Random(0), index=index)


# --------------------------------------------------------------------------------------------------
# The run


def run_curation(
    contexts: Sequence[ImageContext],
    backend: ChatBackend,
    out_dir: str | Path,
    *,
    tasks: Sequence[str] = TASKS,
    params: Mapping[str, Any] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> CurationReport:
    """Ask every missing prompt, then write the records, the rejections and the report to ``out_dir``."""
    if workers < 1:
        raise ValueError(f"workers={workers!r}; expected >= 1")
    params = dict(DEFAULT_PARAMS if params is None else params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    answer_log = AnswerLog(out / ANSWERS_FILE)
    answers, ignored = answer_log.load()
    jobs = build_jobs(contexts, tasks, model=backend_name(backend), params=params)
    report = CurationReport(out_dir=str(out), tasks={t: TaskCounts() for t in tasks}, ignored_lines=ignored)
    pending = []
    for job in jobs:
        counts = report.tasks[job.task]
        counts.jobs += 1
        if job.key in answers:
            counts.resumed += 1
        else:
            pending.append(job)
    failures = _ask_all(pending, backend, params, answer_log, answers, report, workers, progress, len(jobs))
    _write_outputs(jobs, answers, failures, report, out)
    return report


def _ask_all(
    pending: Sequence[Job],
    backend: ChatBackend,
    params: Mapping[str, Any],
    answer_log: AnswerLog,
    answers: dict[str, dict[str, Any]],
    report: CurationReport,
    workers: int,
    progress: bool,
    total: int,
) -> dict[str, str]:
    """Ask ``pending`` jobs, logging each answer as it arrives; returns ``{key: failure reason}``."""
    from tqdm import tqdm

    failures: dict[str, str] = {}
    bar = tqdm(total=total, initial=total - len(pending), desc="curate", unit="prompt", disable=not progress)

    def finish(job: Job, future: Future[str]) -> None:
        try:
            reply = future.result()
        except ChatClientError as err:
            failures[job.key] = str(err)
            report.tasks[job.task].failed += 1
            log.error("%s of image %s failed: %s", job.task, job.context.image_id, err)
        else:
            entry = {"key": job.key, "task": job.task, "image_id": job.context.image_id, "reply": reply}
            answer_log.append(entry)
            answers[job.key] = entry
            report.tasks[job.task].asked += 1
        bar.update(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue = iter(pending)
        running: dict[Future[str], Job] = {}
        try:
            while True:
                while len(running) < workers and (job := next(queue, None)) is not None:
                    running[pool.submit(backend.complete, job.messages, **params)] = job
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finish(running.pop(future), future)
        except BaseException:
            for future in running:
                future.cancel()
            raise
        finally:
            bar.close()
    return failures


def _write_outputs(
    jobs: Sequence[Job],
    answers: Mapping[str, Mapping[str, Any]],
    failures: Mapping[str, str],
    report: CurationReport,
    out: Path,
) -> None:
    records: dict[str, list[dict[str, Any]]] = {task: [] for task in report.tasks}
    for job in jobs:
        counts = report.tasks[job.task]
        context = job.context
        if job.key not in answers:
            reason = failures.get(job.key, "not answered")
            _reject(report, job, REQUEST_FAILED, reason, None)
            continue
        reply = answers[job.key]["reply"]
        try:
            record = reply_to_record(job.task, context, reply)
            check_record(job.task, record, len(records[job.task]))
        except ReplyError as err:
            _reject(report, job, err.problem, err.reason, reply)
            continue
        except RecordError as err:
            _reject(report, job, f"record_{err.problem}", err.reason, reply)
            continue
        records[job.task].append(record)
        counts.records += 1
    for task, task_records in records.items():
        _write_json_atomic(out / OUTPUT_FILES[task], task_records)
    lines = "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in report.rejections)
    _write_text_atomic(out / REJECTED_FILE, lines)
    _write_json_atomic(out / REPORT_FILE, report.to_dict(), indent=1)


def _reject(report: CurationReport, job: Job, problem: str, reason: str, reply: str | None) -> None:
    report.tasks[job.task].rejected[problem] += 1
    report.rejections.append(
        Rejection(job.task, job.context.image_id, job.context.file_name, problem, reason, reply)
    )


def _write_json_atomic(path: Path, data: Any, *, indent: int | None = None) -> None:
    _write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=indent) + "\n")


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
