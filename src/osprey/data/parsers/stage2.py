"""Stage-2 sources and Visual Genome (official ``stage2_data.py`` and ``vg.py``), all COCO-style files.

Each image entry becomes one sample: up to ``max_regions`` of its annotations in random order, one
turn per region. The first user turn is the source's instruction followed by the region tag; later
user turns are the tag alone (VG: a random short question and a length limit). Answers:

- ``coco_instances`` (``instances_train2017.json``): the category name; <= 20 regions. Crowd
  annotations are kept, as officially.
- ``refcoco`` / ``refcoco+`` / ``refcocog`` (``finetune_*_train_with_mask.json``, MDETR-style: each
  image entry is one referring expression, its ``caption``, with that object's annotation): the
  caption; <= 15 regions; image path ``file_name.split('_')[-1]``. The official stage 2 trains on
  RefCOCO and RefCOCO+ only; ``refcocog`` reuses the RefCOCO instruction (our choice, for users who
  add it).
- ``pascal_part`` (``pascalpart_train.json``, names ``category:subcategory``) and ``part_imagenet``
  (``partImagenet_train_format.json``, names ``category subcategory``): the category name; <= 15.
- ``vg`` (``vg_train_with_mask.json``, HQ-SAM masks, ``caption`` per annotation): the caption; <= 3
  regions; annotations with ``"ignore": true`` are left out (as officially; they are marked so by the
  file, so leaving them out is not a silent drop).

Every annotation of a record is checked (mask decodable, answer present) before regions are drawn,
so a record is good or bad independently of the random draw. Images without annotations are
records that give no sample: a ``no_regions`` error (the official loader skipped them silently).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from osprey.data.errors import NO_REGIONS, SCHEMA, RecordError
from osprey.data.parsers.base import (
    Parser,
    get,
    get_size,
    make_sample,
    non_empty_text,
    plain_text,
    region_from_segmentation,
)
from osprey.data.parsers.coco_style import load_coco_style, save_coco_style
from osprey.data.prompts import (
    COCO_CATEGORY_BEGIN,
    OVERVIEW,
    PART_IMAGENET_BEGIN,
    PASCAL_PART_BEGIN,
    REFCOCO_BEGIN,
    REFCOCO_PLUS_BEGIN,
    VG_LIMIT,
    VG_QUESTIONS,
)
from osprey.data.sample import ImageRef, Sample

AnswerFn = Callable[[Mapping[str, Any], Mapping[str, Any], int, int], str]  # (record, ann, index, k)
QuestionFn = Callable[[str, random.Random], str]  # (region tag, rng) -> user text for that region


def _category_name(record: Mapping[str, Any], ann: Mapping[str, Any], index: int, k: int) -> str:
    category_id = get(ann, "category_id", (int, str), index, what=f"annotation {k}")
    category = record.get("categories", {}).get(category_id)
    if category is None:
        raise RecordError(
            SCHEMA, f"annotation {k}: category_id {category_id!r} is not in 'categories'", index
        )
    return non_empty_text(category.get("name"), index, f"name of category {category_id!r}")


def _image_caption(record: Mapping[str, Any], ann: Mapping[str, Any], index: int, k: int) -> str:
    return plain_text(non_empty_text(record["image"].get("caption"), index, "image 'caption'"))


def _annotation_caption(record: Mapping[str, Any], ann: Mapping[str, Any], index: int, k: int) -> str:
    return plain_text(non_empty_text(ann.get("caption"), index, f"annotation {k} 'caption'"))


def _tag_only(tag: str, rng: random.Random) -> str:
    return tag


def _vg_question(tag: str, rng: random.Random) -> str:
    return rng.choice(VG_QUESTIONS).strip().replace("<region>", tag) + VG_LIMIT


def _parse_per_region(
    record: Mapping[str, Any],
    *,
    rng: random.Random,
    index: int,
    source: str,
    task: str,
    begin: str,
    max_regions: int,
    answer: AnswerFn,
    question: QuestionFn = _tag_only,
    strip_prefix: bool = False,
    skip_ignored: bool = False,
) -> list[Sample]:
    image_info = get(record, "image", dict, index)
    file_name = get(image_info, "file_name", str, index, what="image")
    height, width = get_size(image_info, index, what="image")
    annotations = get(record, "annotations", list, index)
    kept = [a for a in annotations if not (skip_ignored and isinstance(a, dict) and a.get("ignore", False))]
    if not kept:
        why = f"all {len(annotations)} annotations are marked 'ignore'" if annotations else "no annotations"
        raise RecordError(
            NO_REGIONS, f"image {image_info.get('id')!r} has {why}; expected at least one region", index
        )

    candidates = []  # (region, answer, annotation id) for every kept annotation, all checked
    for k, ann in enumerate(kept, start=1):
        get(ann, "segmentation", (list, dict), index, what=f"annotation {k}")
        region = region_from_segmentation(ann["segmentation"], height, width, index, k)
        candidates.append((region, answer(record, ann, index, k), ann.get("id")))

    order = rng.sample(range(len(candidates)), k=min(len(candidates), max_regions))
    texts: list[str] = []
    for k, j in enumerate(order, start=1):
        q = question(f"<region{k}>", rng)
        texts += [begin + q if k == 1 else q, candidates[j][1]]
    path = file_name.split("_")[-1] if strip_prefix else file_name
    return [
        make_sample(
            source=source,
            task=task,
            index=index,
            image=ImageRef(path, height, width),
            regions=[candidates[j][0] for j in order],
            texts=texts,
            meta={"image_id": image_info.get("id"), "annotation_ids": [candidates[j][2] for j in order]},
        )
    ]


def parse_coco_instances(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """COCO instances: name the category of each of <= 20 regions."""
    return _parse_per_region(
        record, rng=rng, index=index, source="coco_instances", task="category", begin=COCO_CATEGORY_BEGIN,
        max_regions=20, answer=_category_name,
    )  # fmt: skip


def _refcoco(source: str, begin: str) -> Callable[..., list[Sample]]:
    def parse(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
        """A referring expression (the image entry's caption) for each of <= 15 regions."""
        return _parse_per_region(
            record, rng=rng, index=index, source=source, task="referring_description", begin=begin,
            max_regions=15, answer=_image_caption, strip_prefix=True,
        )  # fmt: skip

    parse.__name__ = f"parse_{source.replace('+', '_plus')}"
    return parse


parse_refcoco = _refcoco("refcoco", REFCOCO_BEGIN)
parse_refcoco_plus = _refcoco("refcoco+", REFCOCO_PLUS_BEGIN)
parse_refcocog = _refcoco("refcocog", REFCOCO_BEGIN)


def parse_pascal_part(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """Pascal-Part: ``category:subcategory`` of each of <= 15 (part) regions."""
    return _parse_per_region(
        record, rng=rng, index=index, source="pascal_part", task="part_category", begin=PASCAL_PART_BEGIN,
        max_regions=15, answer=_category_name,
    )  # fmt: skip


def parse_part_imagenet(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """PartImageNet: ``category subcategory`` of each of <= 15 (part) regions."""
    return _parse_per_region(
        record, rng=rng, index=index, source="part_imagenet", task="part_category", begin=PART_IMAGENET_BEGIN,
        max_regions=15, answer=_category_name,
    )  # fmt: skip


def parse_vg(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """Visual Genome with HQ-SAM masks: a short caption for each of <= 3 regions."""
    return _parse_per_region(
        record, rng=rng, index=index, source="vg", task="region_caption", begin=OVERVIEW, max_regions=3,
        answer=_annotation_caption, question=_vg_question, skip_ignored=True,
    )  # fmt: skip


def _parser(name: str, task: str, parse: Any, description: str) -> Parser:
    return Parser(
        name=name, task=task, load=load_coco_style, parse=parse, save=save_coco_style, description=description
    )


PARSERS: dict[str, Parser] = {
    p.name: p
    for p in (
        _parser(
            "coco_instances", "category", parse_coco_instances, "COCO instances, category naming (stage 2)"
        ),
        _parser("refcoco", "referring_description", parse_refcoco, "RefCOCO finetune_*_with_mask.json"),
        _parser(
            "refcoco+", "referring_description", parse_refcoco_plus, "RefCOCO+ finetune_*_with_mask.json"
        ),
        _parser("refcocog", "referring_description", parse_refcocog, "RefCOCOg finetune_*_with_mask.json"),
        _parser("pascal_part", "part_category", parse_pascal_part, "Pascal-Part (VOC2010) part categories"),
        _parser("part_imagenet", "part_category", parse_part_imagenet, "PartImageNet part categories"),
        _parser("vg", "region_caption", parse_vg, "Visual Genome region captions with HQ-SAM masks"),
    )
}
