"""Per-stage mixtures are data, and users can load their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osprey.data.mixtures import MIXTURES, STAGE2, STAGE3, MixtureEntry, load_mixture, mixture_from_dict


def test_stage_mixtures_match_the_official_configs() -> None:
    assert [e.parser for e in STAGE2.entries] == [
        "coco_instances",
        "refcoco",
        "refcoco+",
        "pascal_part",
        "part_imagenet",
    ]
    assert [e.parser for e in STAGE3.entries] == [
        "osprey_short_form", "osprey_lvis_positive_negative", "osprey_conversation", "osprey_detail_description",
        "osprey_part_level", "vg", "vcr",
    ]  # fmt: skip
    assert STAGE3.entries[3].annotations.endswith("osprey_detail_description.json")  # the released name
    assert {e.images for e in STAGE3.entries[:5]} == {"coco/imgs"}
    assert all(e.weight == 1.0 for m in MIXTURES.values() for e in m.entries)


def test_under_resolves_paths_against_a_data_root() -> None:
    entry = STAGE2.under("/data").entries[0]
    assert (
        entry.annotations == "/data/coco/annotations/instances_train2017.json"
        and entry.images == "/data/coco/imgs"
    )


def test_load_builtin_json_and_yaml(tmp_path: Path) -> None:
    assert load_mixture("stage3") is STAGE3
    (tmp_path / "mine.json").write_text(json.dumps(STAGE2.to_dict()))
    assert load_mixture(tmp_path / "mine.json") == STAGE2
    (tmp_path / "mine.yaml").write_text(
        "name: small\nentries:\n  - {parser: vg, annotations: vg/a.json, images: vg/image, weight: 0.5}\n"
    )
    mixture = load_mixture(tmp_path / "mine.yaml")
    assert mixture.name == "small" and mixture.entries == (MixtureEntry("vg", "vg/a.json", "vg/image", 0.5),)
    bare = mixture_from_dict([{"parser": "vcr", "annotations": "a.jsonl", "images": "i"}], name="bare")
    assert bare.name == "bare" and bare.entries[0].weight == 1.0


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"parser": "imagenet", "annotations": "a", "images": "b"}], "parser 'imagenet'; expected one of"),
        ([{"parser": "vg", "annotations": "a"}], r"lacks \['images'\]"),
        ([{"parser": "vg", "annotations": "a", "images": "b", "ratio": 2}], r"unknown keys \['ratio'\]"),
        ([{"parser": "vg", "annotations": "a", "images": "b", "weight": -1}], "weight -1.0"),
        ({"name": "x"}, "expected a list of entries"),
    ],
)
def test_bad_mixtures_are_refused(entries: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mixture_from_dict(entries)  # type: ignore[arg-type]


def test_missing_mixture_file() -> None:
    with pytest.raises(FileNotFoundError, match="neither a file nor one of stage2, stage3"):
        load_mixture("stage9")
