"""Pieces shared by the two rule-based generators (part-level, positive/negative)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from osprey.data.errors import RecordError
from osprey.data.parsers import get_parser, parse_one


@dataclass(frozen=True)
class Skipped:
    """An annotation or record a generator could not use, and why (nothing is dropped silently)."""

    image_id: Any
    ann_id: Any
    problem: str
    reason: str


@dataclass
class GeneratorResult:
    """Records in the official layout plus everything left out, with reasons."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    questions: int = 0

    def problem_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.problem] = counts.get(s.problem, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        return {
            "records": len(self.records),
            "questions": self.questions,
            "skipped": len(self.skipped),
            "skipped_by_problem": self.problem_counts(),
        }


def image_file_name(image: Mapping[str, Any]) -> str:
    """Base name of an LVIS/PACO image (``file_name`` or the last part of ``coco_url``).

    LVIS images carry only ``coco_url`` (``http://images.cocodataset.org/train2017/000000xxxxxx.jpg``);
    Osprey's loaders join the base name with one COCO folder holding train2017 and val2017.
    """
    name = image.get("file_name") or image.get("coco_url")
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"image {image.get('id')!r} has neither 'file_name' nor 'coco_url'; expected one of them"
        )
    return PurePosixPath(name).name


def usable_segmentation(ann: Mapping[str, Any]) -> str | None:
    """Why ``ann`` cannot be a region (``None`` if it can): it needs a segmentation and a box."""
    seg = ann.get("segmentation")
    if not seg:
        return "no segmentation"
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or bbox[2] <= 0 or bbox[3] <= 0:
        return f"bbox {bbox!r}; expected [x, y, w, h] with w, h > 0"
    return None


def region_entry(ann: Mapping[str, Any]) -> dict[str, Any]:
    return {"bbox": list(ann["bbox"]), "segmentation": ann["segmentation"]}


def check_with_parser(parser_name: str, records: Sequence[dict[str, Any]], result: GeneratorResult) -> None:
    """Keep in ``result.records`` only the records our own parser reads; the rest go to ``skipped``."""
    parser = get_parser(parser_name)
    for index, record in enumerate(records):
        try:
            parse_one(parser, record, rng=random.Random(0), index=index)
        except RecordError as err:
            result.skipped.append(Skipped(record.get("id"), None, f"record_{err.problem}", err.reason))
            continue
        result.records.append(record)
        result.questions += len(record["conversations"]) // 2
