"""The COCO annotation layout shared by the stage-2 sources and Visual Genome.

A COCO-style file is one JSON object ``{"images": [...], "annotations": [...], "categories": [...]}``.
:func:`load_coco_style` turns it into one record per image entry, in file order:
``{"image": <image entry>, "annotations": [<its annotations>], "categories": {id: <category>}}``
(``categories`` is one dict shared by all records). The record index used in reports is therefore
the image's position in ``images``.

File-level defects are :class:`SourceError` (the file cannot be split into records): a missing
``images``/``annotations`` list, duplicate annotation ids (the official loader asserts on them) and
annotations whose ``image_id`` names no image (pycocotools would drop them silently).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from osprey.data.errors import SourceError
from osprey.data.parsers.base import Record, load_json


def load_coco_style(path: str | Path, *, image_root: str | Path | None = None) -> list[Record]:
    """One record per entry of ``images`` with its annotations and the shared category table."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise SourceError(f"{str(path)!r} holds a JSON {type(data).__name__}; expected a COCO-style object")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise SourceError(
                f"{str(path)!r} has no {key!r} list; expected COCO layout with images and annotations"
            )
    categories = {c["id"]: c for c in data.get("categories", []) if isinstance(c, dict) and "id" in c}
    image_ids = {img["id"] for img in data["images"] if isinstance(img, dict) and "id" in img}

    by_image: dict[Any, list[dict]] = defaultdict(list)
    seen_ids: set[Any] = set()
    duplicates, orphans = [], []
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or ann.get("image_id") not in image_ids:
            orphans.append(ann.get("id") if isinstance(ann, dict) else ann)
            continue
        if "id" in ann:
            if ann["id"] in seen_ids:
                duplicates.append(ann["id"])
            seen_ids.add(ann["id"])
        by_image[ann["image_id"]].append(ann)
    if duplicates:
        raise SourceError(
            f"{str(path)!r}: {len(duplicates)} duplicate annotation id(s), e.g. {duplicates[:5]}"
        )
    if orphans:
        raise SourceError(
            f"{str(path)!r}: {len(orphans)} annotation(s) whose image_id names no image, e.g. ids {orphans[:5]}"
        )
    return [
        {
            "image": img,
            "annotations": by_image.get(img.get("id"), []) if isinstance(img, dict) else [],
            "categories": categories,
        }
        for img in data["images"]
    ]


def save_coco_style(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write records back as one COCO-style object (the categories of all records, merged)."""
    categories: dict[Any, Any] = {}
    for record in records:
        categories.update(record.get("categories", {}))
    data = {
        "images": [r["image"] for r in records],
        "annotations": [a for r in records for a in r["annotations"]],
        "categories": list(categories.values()),
    }
    with Path(path).open("w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
