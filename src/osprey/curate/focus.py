"""Region-focused records: split listed-region Osprey-724K records by the regions each question names.

An official short-form or part-level record lists every region of its image in the first turn
("Ther are 5 part regions in the picture: region1<mask><pos>,...") and then asks about them by name
("What colour is <region4>?"). A model must first bind the name to the fourth listed mask, then read
it. A large model learns that binding; a small one trained briefly does not, and its answers are
then trained against the wrong region. This transform writes, from such a file, records in the same
official layout that list only the regions a group of questions names, renumbered from 1 in order of
first mention: a record's turns about ``<region4>`` alone become one record with one region, a turn
about ``<region4>`` and ``<region5>`` one with two. Turns keep their order and their exact text
otherwise; a turn that names no region is dropped (it has nothing to be focused on). The benchmark
asks its questions in exactly this focused form (one question's regions only), so the transform
moves training towards it without changing the file format or any answer.

    records = focus_records(json.load(open("osprey_short_form.json")))

:func:`select_questions` keeps, from such records, only the turns asking questions of given
templates (e.g. the synthetic world's relation questions), for a training phase that concentrates on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["focus_file", "focus_records", "select_file", "select_questions"]

_REGION = re.compile(r"<region(\d+)>")


def _focus_one(record: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    turns = record.get("conversations")
    annotation = record.get("annotation")
    if not isinstance(turns, list) or not isinstance(annotation, list):
        raise ValueError(f"record {index}: expected 'conversations' and 'annotation' lists (an Osprey-724K record)")
    if len(turns) % 2:
        raise ValueError(f"record {index}: {len(turns)} conversation entries; expected question/answer pairs")
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for q, a in zip(turns[::2], turns[1::2]):
        named = tuple(dict.fromkeys(int(k) for k in _REGION.findall(q["value"])))
        if not named:
            continue
        bad = [k for k in named if not 1 <= k <= len(annotation)]
        if bad:
            raise ValueError(
                f"record {index}: question {q['value']!r} names region(s) {bad}; the record has "
                f"{len(annotation)} region(s)"
            )
        renumber = {old: new for new, old in enumerate(named, start=1)}
        text = _REGION.sub(lambda m, renumber=renumber: f"<region{renumber[int(m.group(1))]}>", q["value"])
        groups.setdefault(named, []).extend([{**q, "value": text}, dict(a)])
    head = {k: v for k, v in record.items() if k not in ("conversations", "annotation")}
    return [
        {**head, "annotation": [annotation[k - 1] for k in named], "conversations": conversation}
        for named, conversation in groups.items()
    ]


def focus_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every record's turns regrouped by the regions they name (see the module docstring)."""
    return [out for index, record in enumerate(records) for out in _focus_one(record, index)]


def focus_file(source: str | Path, target: str | Path) -> int:
    """Write the focused records of an official JSON file to ``target``; returns how many were written."""
    records = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a JSON list of Osprey-724K records, got {type(records).__name__}")
    focused = focus_records(records)
    Path(target).write_text(json.dumps(focused, separators=(",", ":")), encoding="utf-8")
    return len(focused)


def _template_pattern(template: str) -> str:
    """A template's regex: ``{0}``, ``{1}``, ... match any ``<regionK>``; the rest literally."""
    pieces = re.split(r"\{\d+\}", template)
    return r"<region\d+>".join(re.escape(piece) for piece in pieces)


def select_questions(records: Iterable[Mapping[str, Any]], templates: Iterable[str]) -> list[dict[str, Any]]:
    """Records with only the question/answer pairs whose question is one of ``templates`` (region
    slots written ``{0}``, ``{1}``, as in :mod:`osprey.synthetic.templates`); a record left with
    no pair is dropped. Regions, their order and the answers are unchanged."""
    patterns = [_template_pattern(t) for t in templates]
    if not patterns:
        raise ValueError("select_questions needs at least one question template")
    question = re.compile("(?:" + "|".join(patterns) + ")")
    out = []
    for index, record in enumerate(records):
        turns = record.get("conversations")
        if not isinstance(turns, list) or len(turns) % 2:
            raise ValueError(f"record {index}: expected 'conversations' as question/answer pairs")
        kept = [turn for q, a in zip(turns[::2], turns[1::2]) if question.fullmatch(q["value"].strip()) for turn in (q, a)]
        if kept:
            out.append({**record, "conversations": [dict(t) for t in kept]})
    return out


def select_file(source: str | Path, target: str | Path, templates: Iterable[str]) -> int:
    """Write :func:`select_questions` of an official JSON file to ``target``; returns the record count."""
    records = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(records, list):
        raise ValueError(f"{source}: expected a JSON list of Osprey-724K records, got {type(records).__name__}")
    selected = select_questions(records, list(templates))
    Path(target).write_text(json.dumps(selected, separators=(",", ":")), encoding="utf-8")
    return len(selected)
