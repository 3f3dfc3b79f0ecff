"""The output folder of ``osprey label``: one JSONL file per rank, resumable, and their merge.

Each rank appends to ``labels-rank{R}.jsonl``. A batch's lines go out in one ``write`` on an
``O_APPEND`` descriptor, then ``fsync``: after a crash (SIGKILL, power loss) a file ends with whole
lines, possibly followed by one torn line. On start a rank cuts its own file back to its last
newline and reads every ``labels-rank*.jsonl`` of the folder (whatever the world size was) for the
regions already answered; those are never asked again. :func:`merge` sorts the lines of all ranks
by (image, index) into one file, equal to what one process writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from osprey.label.sources import LabelError

PATTERN = "labels-rank*.jsonl"
MERGED = "labels.jsonl"


def shard_path(out: Path, rank: int) -> Path:
    return out / f"labels-rank{rank}.jsonl"


def complete_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The whole lines of ``path`` as records (a torn last line, without its newline, is ignored)."""
    data = path.read_bytes()
    end = data.rfind(b"\n")
    for number, line in enumerate(data[: end + 1].splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as err:
            raise LabelError(f"{path}: line {number} is not JSON ({err}); the file was edited or damaged") from None


def drop_torn_tail(path: Path) -> int:
    """Cut ``path`` back to its last newline; the bytes dropped (a torn last line) or 0."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    with path.open("rb+") as f:
        keep, pos = 0, size
        while pos > 0:  # backwards in 64 KiB steps to the last newline
            start = max(0, pos - (1 << 16))
            f.seek(start)
            cut = f.read(pos - start).rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            pos = start
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return size - keep


def key(record: dict[str, Any]) -> tuple[str, int]:
    return record["image"], int(record["index"])


LEGACY = {"quantize": "none"}  # a key lines written before it existed lack: what they were made with


def done_regions(out: Path, settings: dict[str, Any]) -> dict[tuple[str, int], int]:
    """``{(image, index): regions in that image}`` of every whole line in ``out``'s shard files.

    A line made with other ``settings`` (model, decoding options, source) is an error: the folder
    belongs to another run and mixing them would give a file no single run produces."""
    done: dict[tuple[str, int], int] = {}
    for path in sorted(out.glob(PATTERN)):
        for record in complete_lines(path):
            theirs = {name: record.get(name, LEGACY.get(name)) for name in settings}
            if theirs != settings:
                diff = {k: (theirs[k], v) for k, v in settings.items() if theirs[k] != v}
                raise LabelError(f"{path} was written with other settings {diff} (theirs, this run's); "
                                 "resume with the same flags or use another --out")
            done[key(record)] = int(record["regions_in_image"])
    return done


class ShardWriter:
    """Appends whole batches of lines to one shard file, each batch durable before the next."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.dropped = drop_torn_tail(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n" for r in records)
        view = memoryview(data)
        while view:  # one write() for the batch; a short write (rare: a full disk) continues it
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge(out: Path, target: Path | None = None) -> tuple[Path, int, int]:
    """Write every shard's whole lines, once each, sorted by (image, index), to ``target``
    (default ``out/labels.jsonl``, atomically); (path, lines written, duplicates dropped)."""
    target = target or out / MERGED
    seen: dict[tuple[str, int], bytes] = {}
    duplicates = 0
    paths = sorted(out.glob(PATTERN))
    if not paths:
        raise LabelError(f"no {PATTERN} in {str(out)!r}; nothing to merge")
    for path in paths:
        for record in complete_lines(path):
            line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
            if key(record) in seen:
                duplicates += 1
                continue
            seen[key(record)] = line
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as f:
        for k in sorted(seen):
            f.write(seen[k])
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(target)
    return target, len(seen), duplicates
