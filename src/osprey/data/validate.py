"""Check an annotation file record by record and report every defect with its index and reason.

Checks, per record: it parses (schema, conversation, region references consistent with the masks,
texts the template can take, masks structurally decodable and inside the declared image size);
every region of its samples decodes through :mod:`osprey.masks` and is not empty; with an image
folder, the image exists, is readable and has the size the record declares. Regions that a
sample leaves out by the per-image limit (COCO keeps <= 20) are checked structurally only.

The report is data (:class:`ValidationReport`); ``osprey data validate`` prints it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from osprey.data.errors import (
    IMAGE_MISSING,
    IMAGE_SIZE,
    IMAGE_UNREADABLE,
    MASK,
    MASK_EMPTY,
    RecordError,
    SourceError,
)
from osprey.data.parsers import Parser, Record, get_parser, parse_one
from osprey.data.sample import Sample
from osprey.masks import MaskError


@dataclass(frozen=True)
class Problem:
    """One defect of one record."""

    index: int
    problem: str  # an osprey.data.errors code
    reason: str


@dataclass
class ValidationReport:
    """Every problem found in a file, by record index; nothing is left out."""

    path: str
    source: str
    num_records: int = 0
    num_samples: int = 0
    problems: list[Problem] = field(default_factory=list)
    file_error: str | None = None  # the file could not be read as records at all

    @property
    def bad_indices(self) -> list[int]:
        return sorted({p.index for p in self.problems})

    @property
    def good_indices(self) -> list[int]:
        bad = set(self.bad_indices)
        return [i for i in range(self.num_records) if i not in bad]

    @property
    def ok(self) -> bool:
        return self.file_error is None and not self.problems

    def counts(self) -> Counter[str]:
        """Number of problems per problem code."""
        return Counter(p.problem for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: totals, counts per problem and every problem."""
        return {
            "path": self.path,
            "source": self.source,
            "file_error": self.file_error,
            "num_records": self.num_records,
            "num_bad_records": len(self.bad_indices),
            "num_samples": self.num_samples,
            "counts": dict(sorted(self.counts().items())),
            "problems": [asdict(p) for p in self.problems],
        }

    def format(self, *, max_listed: int | None = None) -> str:
        """Human-readable report: totals, counts per problem, then each bad record's index and reason."""
        lines = [f"{self.source}: {self.path}"]
        if self.file_error is not None:
            lines.append(f"  file error: {self.file_error}")
            return "\n".join(lines)
        bad = self.bad_indices
        lines.append(
            f"  {self.num_records} records: {self.num_records - len(bad)} good, {len(bad)} bad; "
            f"{self.num_samples} samples from good records"
        )
        if not self.problems:
            lines.append("  no problems found")
            return "\n".join(lines)
        lines.append("  problems:")
        width = max(len(code) for code in self.counts())
        lines += [f"    {code:<{width}}  {n}" for code, n in sorted(self.counts().items())]
        lines.append("  bad records (index, problem, reason):")
        listed = self.problems if max_listed is None else self.problems[:max_listed]
        lines += [f"    #{p.index:<5} {p.problem:<{width}}  {p.reason}" for p in listed]
        if len(listed) < len(self.problems):
            lines.append(f"    ... {len(self.problems) - len(listed)} more not listed")
        return "\n".join(lines)


def validate_file(
    path: str | Path,
    source: str,
    *,
    images: str | Path | None = None,
    seed: int = 0,
    decode_masks: bool = True,
) -> tuple[ValidationReport, list[Record]]:
    """Validate ``path`` read by parser ``source``; returns the report and the records read."""
    parser = get_parser(source)
    report = ValidationReport(path=str(path), source=source)
    try:
        records = parser.load(path, image_root=images)
    except SourceError as err:
        report.file_error = str(err)
        return report, []
    validate_records(parser, records, report=report, images=images, seed=seed, decode_masks=decode_masks)
    return report, records


def validate_records(
    parser: Parser,
    records: list[Record],
    *,
    report: ValidationReport | None = None,
    images: str | Path | None = None,
    seed: int = 0,
    decode_masks: bool = True,
) -> ValidationReport:
    """The problems of ``records`` (parsed with a ``seed``-ed generator), added to ``report`` if given."""
    if report is None:
        report = ValidationReport(path="<records>", source=parser.name)
    rng = random.Random(seed)
    image_sizes: dict[Path, tuple[int, int] | Problem] = {}
    report.num_records = len(records)
    for index, record in enumerate(records):
        try:
            samples = parse_one(parser, record, rng=rng, index=index)
        except RecordError as err:
            report.problems.append(Problem(index, err.problem, err.reason))
            continue
        found: list[Problem] = []
        for sample in samples:
            if decode_masks:
                found += _mask_problems(sample, index, images)
            if images is not None:
                found += _image_problems(sample, index, Path(images), image_sizes)
        report.problems += found
        if not found:
            report.num_samples += len(samples)
    return report


def _mask_problems(sample: Sample, index: int, images: str | Path | None) -> list[Problem]:
    problems = []
    for k, region in enumerate(sample.regions, start=1):
        try:
            mask = region.decode(images)
        except MaskError as err:
            problems.append(Problem(index, MASK, f"region {k}: {err}"))
            continue
        if not mask.any():
            problems.append(
                Problem(index, MASK_EMPTY, f"region {k} ({region.kind}) decodes to an empty mask")
            )
    return problems


def _image_problems(
    sample: Sample, index: int, images: Path, cache: dict[Path, tuple[int, int] | Problem]
) -> list[Problem]:
    path = images / sample.image.path
    if path not in cache:
        cache[path] = _read_image_size(path)
    found = cache[path]
    if isinstance(found, Problem):
        return [Problem(index, found.problem, found.reason)]
    height, width = found
    declared = (sample.image.height, sample.image.width)
    if None not in declared and declared != (height, width):
        reason = (
            f"image {sample.image.path!r} is {width}x{height}; the record declares "
            f"{declared[1]}x{declared[0]} (masks would not line up)"
        )
        return [Problem(index, IMAGE_SIZE, reason)]
    return []


def _read_image_size(path: Path) -> tuple[int, int] | Problem:
    """``(height, width)`` of an image file, or the problem (index filled in by the caller)."""
    if not path.is_file():
        return Problem(-1, IMAGE_MISSING, f"image {str(path)!r} does not exist")
    try:
        with Image.open(path) as img:
            width, height = img.size
            img.verify()
    except Exception as err:  # PIL raises many types for broken files
        return Problem(
            -1, IMAGE_UNREADABLE, f"image {str(path)!r} cannot be read ({type(err).__name__}: {err})"
        )
    return height, width
