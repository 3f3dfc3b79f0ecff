"""Paths of the data fixtures (written by fixtures/make_fixtures.py), shared by the data tests.

A plain module with a distinctive name rather than conftest.py, so ``import`` cannot pick up another
directory's conftest.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
IMAGES = FIXTURES / "images"

# parser name -> (annotation file, image folder), one real-format fixture per source
SOURCE_FIXTURES: dict[str, tuple[Path, Path]] = {
    "osprey_short_form": (FIXTURES / "osprey724k/osprey_short_form.json", IMAGES / "coco"),
    "osprey_conversation": (FIXTURES / "osprey724k/osprey_conversation.json", IMAGES / "coco"),
    "osprey_detail_description": (FIXTURES / "osprey724k/osprey_detail_description.json", IMAGES / "coco"),
    "osprey_part_level": (FIXTURES / "osprey724k/osprey_part_level.json", IMAGES / "coco"),
    "osprey_lvis_positive_negative": (
        FIXTURES / "osprey724k/osprey_lvis_positive_negative.json",
        IMAGES / "coco",
    ),
    "coco_instances": (FIXTURES / "coco/instances_train2017.json", IMAGES / "coco"),
    "refcoco": (FIXTURES / "refcocos/finetune_refcoco_train_with_mask.json", IMAGES / "coco"),
    "refcoco+": (FIXTURES / "refcocos/finetune_refcoco+_train_with_mask.json", IMAGES / "coco"),
    "refcocog": (FIXTURES / "refcocos/finetune_refcocog_train_with_mask.json", IMAGES / "coco"),
    "pascal_part": (FIXTURES / "pascal_part/train.json", IMAGES / "voc"),
    "part_imagenet": (FIXTURES / "part_imagenet/train_format.json", IMAGES / "partimagenet"),
    "vg": (FIXTURES / "vg/vg_train_with_mask.json", IMAGES / "vg"),
    "vcr": (FIXTURES / "vcr/train.jsonl", IMAGES / "vcr1images"),
}
BROKEN = FIXTURES / "broken/osprey_conversation_broken.json"
