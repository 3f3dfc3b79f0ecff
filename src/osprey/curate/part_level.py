"""Part-level records (``osprey_part_level.json``) from PACO-style part and attribute annotations.

The official Osprey code does not include this generator; this one follows the paper's description
(part categories and part attributes of PACO-LVIS, answered in a word or phrase).

Input: a PACO annotation file (LVIS layout): ``images``; ``categories`` where part categories are
named ``object:part`` (``"bowl:rim"``); ``annotations`` with ``obj_ann_id`` (the object annotation a
part belongs to; equal to its own ``id`` for an object) and ``attribute_ids``; ``attributes``
(``{"id", "name"}``) and ``attr_type_to_attr_idxs`` (``{"color": [ids], "material": [...], ...}``).

Output: one record per object instance (more if it has more parts than ``max_regions - 1``):
region 1 is the object, the next regions its parts. Per region, in order: "What is the category of
<regionK>?" (the PACO name: ``bowl``, ``bowl:rim``), then one question per annotated attribute type
("What is the color of <regionK>?" -> ``white, black``). Annotations that cannot be regions are
reported in ``skipped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osprey.curate.common import (
    GeneratorResult,
    Skipped,
    check_with_parser,
    image_file_name,
    region_entry,
    usable_segmentation,
)

CATEGORY_QUESTION = "What is the category of {region}?"
ATTRIBUTE_QUESTIONS = {
    "color": "What is the color of {region}?",
    "pattern_marking": "What is the pattern or marking of {region}?",
    "material": "What is the material of {region}?",
    "reflectance": "How reflective is {region}?",
    "transparency": "How transparent is {region}?",
}
GENERIC_ATTRIBUTE_QUESTION = "What is the {type} of {region}?"


def attribute_types(paco: Mapping[str, Any]) -> dict[int, str]:
    """Attribute id -> its type (``color``...): from ``attr_type_to_attr_idxs``, else each attribute's
    ``type`` field, else ``"attribute"``."""
    types: dict[int, str] = {}
    for type_name, ids in (paco.get("attr_type_to_attr_idxs") or {}).items():
        for attr_id in ids:
            types[int(attr_id)] = type_name
    for attr in paco.get("attributes", []):
        types.setdefault(attr["id"], attr.get("type") or "attribute")
    return types


def attribute_question(type_name: str, region: str) -> str:
    template = ATTRIBUTE_QUESTIONS.get(type_name)
    if template is None:
        return GENERIC_ATTRIBUTE_QUESTION.format(type=type_name.replace("_", " "), region=region)
    return template.format(region=region)


def part_level_records(paco: Mapping[str, Any], *, max_regions: int = 8) -> GeneratorResult:
    """All part-level records of a PACO file, checked with our ``osprey_part_level`` parser."""
    if max_regions < 2:
        raise ValueError(f"max_regions={max_regions!r}; expected >= 2 (the object and at least one part)")
    for key in ("images", "annotations", "categories"):
        if key not in paco:
            raise ValueError(
                f"PACO data lacks {key!r}; expected an LVIS-layout file with images, annotations, categories"
            )
    images = {image["id"]: image for image in paco["images"]}
    categories = {c["id"]: c["name"] for c in paco["categories"]}
    attr_names = {a["id"]: a["name"] for a in paco.get("attributes", [])}
    attr_types = attribute_types(paco)
    result = GeneratorResult()

    objects: dict[Any, Mapping[str, Any]] = {}
    parts: dict[Any, list[Mapping[str, Any]]] = {}
    for ann in paco["annotations"]:
        problem = _unusable(ann, images, categories)
        if problem is not None:
            result.skipped.append(Skipped(ann.get("image_id"), ann.get("id"), *problem))
            continue
        owner = ann.get("obj_ann_id", ann["id"])
        if owner == ann["id"]:
            objects[ann["id"]] = ann
        else:
            parts.setdefault(owner, []).append(ann)
    for owner, orphan_parts in parts.items():
        if owner not in objects:
            for ann in orphan_parts:
                reason = f"part of object annotation {owner!r}, which is missing or unusable"
                result.skipped.append(Skipped(ann["image_id"], ann["id"], "orphan_part", reason))

    records = []
    for obj in objects.values():
        obj_parts = parts.get(obj["id"], [])
        step = max_regions - 1
        chunks = [obj_parts[i : i + step] for i in range(0, len(obj_parts), step)] or [[]]
        for chunk in chunks:
            records.append(
                _record(images[obj["image_id"]], [obj, *chunk], categories, attr_names, attr_types)
            )
    check_with_parser("osprey_part_level", records, result)
    return result


def _unusable(
    ann: Mapping[str, Any], images: Mapping[Any, Any], categories: Mapping[Any, str]
) -> tuple[str, str] | None:
    if ann.get("image_id") not in images:
        return "unknown_image", f"image_id {ann.get('image_id')!r} is not in 'images'"
    if ann.get("category_id") not in categories:
        return "unknown_category", f"category_id {ann.get('category_id')!r} is not in 'categories'"
    if (reason := usable_segmentation(ann)) is not None:
        return "no_mask", reason
    return None


def _record(
    image: Mapping[str, Any],
    anns: list[Mapping[str, Any]],
    categories: Mapping[Any, str],
    attr_names: Mapping[int, str],
    attr_types: Mapping[int, str],
) -> dict[str, Any]:
    conversations = []
    for k, ann in enumerate(anns, start=1):
        region = f"<region{k}>"
        conversations += _qa(CATEGORY_QUESTION.format(region=region), categories[ann["category_id"]])
        by_type: dict[str, list[str]] = {}
        for attr_id in ann.get("attribute_ids", []):
            if attr_id in attr_names:
                by_type.setdefault(attr_types.get(attr_id, "attribute"), []).append(attr_names[attr_id])
        for type_name, names in by_type.items():
            conversations += _qa(attribute_question(type_name, region), ", ".join(names))
    return {
        "id": image["id"],
        "file_name": image_file_name(image),
        "height": image["height"],
        "width": image["width"],
        "annotation": [region_entry(ann) for ann in anns],
        "conversations": conversations,
    }


def _qa(question: str, answer: str) -> list[dict[str, str]]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
