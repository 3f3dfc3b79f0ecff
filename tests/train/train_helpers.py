"""Paths of the synthetic world's files, by parser name."""

from __future__ import annotations


def entries(*names: str) -> list[dict[str, str]]:
    files = {
        "llava": "annotations/llava_captions.json",
        "coco_instances": "annotations/instances.json",
        "osprey_short_form": "annotations/osprey_short_form.json",
        "osprey_part_level": "annotations/osprey_part_level.json",
        "osprey_lvis_positive_negative": "annotations/osprey_lvis_positive_negative.json",
        "osprey_conversation": "annotations/osprey_conversation.json",
        "osprey_detail_description": "annotations/osprey_detail_description.json",
    }
    return [{"parser": n, "annotations": files[n], "images": "images"} for n in names]
