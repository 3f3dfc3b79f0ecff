"""Parsers of the five Osprey-724K files (official ``osprey/datasets/osprey_724k.py``).

Record layout (a JSON list, one record per image): ``{"id", "file_name", "height", "width",
"annotation": [{"bbox", "segmentation"}, ...], "conversations": [{"from": "human"|"gpt",
"value"}, ...]}``; the detailed-description file has ``"description": ["<region1>: text", ...]``
aligned with ``annotation`` instead of ``conversations``.

Official behaviour kept: image path ``file_name.split('_')[-1]`` (``COCO_train2014_000000xxxxxx.jpg``
-> ``000000xxxxxx.jpg`` in a COCO folder holding train2017+val2017) except for the LVIS file, which
uses ``file_name`` unchanged; the "Ther are N part regions ..." first turn and ``<``/``>`` removal for
conversation, short-form and part-level; ``<regionK>`` mentions bound to masks for LVIS; one random
detailed question per region and the answer ``re.findall(r"<.*>:\\ (.*)", d)[0]``.

Decided differently (each a record error the official loaders hit as a crash, a silent skip or a
silent misbinding): records without question/answer pairs, with an odd number of conversation
entries or roles out of order; LVIS texts whose ``<regionK>`` mentions are not exactly 1..N in order
(the official splice binds the i-th mention to the i-th mask, whatever K says); description lists
whose length differs from ``annotation``. Detailed questions are drawn from ``rng`` on every call
(the official loader drew them once, at load). A literal ``<regionK>`` in a description answer is
kept as plain ``regionK`` (see ``base.plain_text``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from osprey.data.errors import CONVERSATION, NO_REGIONS, REGION_REFS, TEXT, RecordError
from osprey.data.parsers.base import (
    Parser,
    get,
    get_size,
    load_json_list,
    make_sample,
    plain_text,
    region_from_segmentation,
    save_json_list,
)
from osprey.data.prompts import DETAILED_QUESTIONS, OVERVIEW, SHORT_ANSWER_LIMIT, region_count_sentence
from osprey.data.sample import ImageRef, RegionMask, Sample

_RAW_REGION_RE = re.compile(r"<region(\d+)>")  # official LVIS pattern r'<region\d+>'
_DESCRIPTION_RE = re.compile(r"<.*>:\ (.*)")  # official answer extraction, greedy as it is


def _tag(k: int) -> str:
    return f"<region{k}>"


def _image_and_regions(
    record: Mapping[str, Any], index: int, *, strip_prefix: bool
) -> tuple[ImageRef, list[RegionMask]]:
    file_name = get(record, "file_name", str, index)
    height, width = get_size(record, index)
    annotations = get(record, "annotation", list, index)
    if not annotations:
        raise RecordError(NO_REGIONS, "'annotation' is empty; expected at least one region", index)
    regions = []
    for k, ann in enumerate(annotations, start=1):
        get(ann, "segmentation", (list, dict), index, what=f"annotation {k}")
        regions.append(region_from_segmentation(ann["segmentation"], height, width, index, k))
    path = file_name.split("_")[-1] if strip_prefix else file_name
    return ImageRef(path, height, width), regions


def _qa_pairs(record: Mapping[str, Any], index: int) -> list[tuple[str, str]]:
    conversations = get(record, "conversations", list, index)
    if len(conversations) // 2 == 0:
        raise RecordError(
            CONVERSATION, f"{len(conversations)} conversation entries; expected a question/answer pair", index
        )
    if len(conversations) % 2:
        raise RecordError(
            CONVERSATION,
            f"{len(conversations)} conversation entries; expected human/gpt pairs (an even number)",
            index,
        )
    pairs = []
    for i in range(0, len(conversations), 2):
        q = get(conversations[i], "value", str, index, what=f"conversation {i}")
        a = get(conversations[i + 1], "value", str, index, what=f"conversation {i + 1}")
        for j, role in ((i, "human"), (i + 1, "gpt")):
            if conversations[j].get("from") != role:
                raise RecordError(
                    CONVERSATION,
                    f"conversation {j} is from {conversations[j].get('from')!r}; expected {role!r}",
                    index,
                )
        pairs.append((q, a))
    return pairs


def _drop_angle_brackets(text: str) -> str:
    return text.replace("<", "").replace(">", "")


def _parse_listed_regions(
    record: Mapping[str, Any], *, index: int, source: str, task: str, limit: str
) -> list[Sample]:
    """Conversation, short-form and part-level: regions listed in turn 1, then the QA turns."""
    image, regions = _image_and_regions(record, index, strip_prefix=True)
    pairs = _qa_pairs(record, index)
    head = OVERVIEW + region_count_sentence([_tag(k) for k in range(1, len(regions) + 1)])
    texts: list[str] = []
    for i, (q, a) in enumerate(pairs):
        question = _drop_angle_brackets(q) + limit
        texts += [head + question if i == 0 else question, _drop_angle_brackets(a)]
    return [
        make_sample(
            source=source, task=task, index=index, image=image, regions=regions, texts=texts,
            meta={"id": record.get("id"), "file_name": record["file_name"]},
        )
    ]  # fmt: skip


def parse_short_form(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """``osprey_short_form.json``: listed regions, answers limited to a word or phrase."""
    return _parse_listed_regions(
        record, index=index, source="osprey_short_form", task="short_form", limit=SHORT_ANSWER_LIMIT
    )


def parse_conversation(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """``osprey_conversation.json``: listed regions, free-form multi-turn conversation."""
    return _parse_listed_regions(
        record, index=index, source="osprey_conversation", task="conversation", limit=""
    )


def parse_part_level(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """``osprey_part_level.json``: listed (part) regions, answers limited to a word or phrase."""
    return _parse_listed_regions(
        record, index=index, source="osprey_part_level", task="part_level", limit=SHORT_ANSWER_LIMIT
    )


def parse_lvis_positive_negative(
    record: Mapping[str, Any], *, rng: random.Random, index: int
) -> list[Sample]:
    """``osprey_lvis_positive_negative.json``: questions name regions as ``<regionK>``; no limit."""
    image, regions = _image_and_regions(record, index, strip_prefix=False)
    pairs = _qa_pairs(record, index)
    mentions = [int(k) for q, _ in pairs for k in _RAW_REGION_RE.findall(q)]
    if mentions != list(range(1, len(regions) + 1)):
        raise RecordError(
            REGION_REFS,
            f"questions mention regions {mentions} with {len(regions)} masks; expected each of "
            f"1..{len(regions)} once, in order (the i-th mention is bound to the i-th mask)",
            index,
        )
    counter = iter(range(1, len(regions) + 1))
    texts: list[str] = []
    for i, (q, a) in enumerate(pairs):
        question = _RAW_REGION_RE.sub(lambda _m: _tag(next(counter)), q)
        texts += [OVERVIEW + question if i == 0 else question, plain_text(a)]
    return [
        make_sample(
            source="osprey_lvis_positive_negative", task="positive_negative", index=index, image=image,
            regions=regions, texts=texts, meta={"id": record.get("id"), "file_name": record["file_name"]},
        )
    ]  # fmt: skip


def parse_detail_description(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """``osprey_detail_description.json``: one random detailed question per region, in region order."""
    image, regions = _image_and_regions(record, index, strip_prefix=True)
    descriptions = get(record, "description", list, index)
    if len(descriptions) != len(regions):
        raise RecordError(
            TEXT,
            f"{len(descriptions)} descriptions for {len(regions)} regions; expected one per region",
            index,
        )
    texts: list[str] = []
    for k, description in enumerate(descriptions, start=1):
        if not isinstance(description, str):
            raise RecordError(TEXT, f"description {k} is {description!r}; expected '<regionK>: text'", index)
        found = _DESCRIPTION_RE.findall(description)
        if not found or not found[0].strip():
            raise RecordError(
                TEXT, f"description {k} {description[:60]!r}; expected '<regionK>: text'", index
            )
        question = rng.choice(DETAILED_QUESTIONS).replace("<region>", _tag(k))
        texts += [OVERVIEW + question if k == 1 else question, plain_text(found[0])]
    return [
        make_sample(
            source="osprey_detail_description", task="detailed_description", index=index, image=image,
            regions=regions, texts=texts, meta={"id": record.get("id"), "file_name": record["file_name"]},
        )
    ]  # fmt: skip


def _parser(name: str, task: str, parse: Any, description: str) -> Parser:
    return Parser(
        name=name, task=task, load=load_json_list, parse=parse, save=save_json_list, description=description
    )


PARSERS: dict[str, Parser] = {
    p.name: p
    for p in (
        _parser("osprey_short_form", "short_form", parse_short_form, "Osprey-724K short-form QA"),
        _parser("osprey_conversation", "conversation", parse_conversation, "Osprey-724K conversations"),
        _parser(
            "osprey_detail_description", "detailed_description", parse_detail_description,
            "Osprey-724K detailed region descriptions",
        ),
        _parser("osprey_part_level", "part_level", parse_part_level, "Osprey-724K part-level QA (PACO-LVIS)"),
        _parser(
            "osprey_lvis_positive_negative", "positive_negative", parse_lvis_positive_negative,
            "Osprey-724K LVIS positive/negative questions",
        ),
    )
}  # fmt: skip
