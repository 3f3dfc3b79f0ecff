"""Stage-2 and VG parsers (COCO-style files) on real-format fixtures."""

from __future__ import annotations

import copy
import json
import random

import pytest
from data_fixture_paths import SOURCE_FIXTURES

from osprey.data.errors import NO_REGIONS, SCHEMA, TEXT, RecordError, SourceError
from osprey.data.parsers import PARSERS, parse_records
from osprey.data.parsers.coco_style import load_coco_style, save_coco_style
from osprey.data.prompts import VG_QUESTIONS
from osprey.data.sample import Sample, official_text

COCO_BEGIN = (
    "<image>\nIn the conversation below, you simply answer the category name based on what you see in the "
    "imagery inside a particular region. I will give you only one region each time.\n"
)
REFCOCO_BEGIN = (
    "<image>\nI will provide you with only one region containing only one object, although there may be other "
    "objects present in the image. It is recommended that you describe the object's relative position with "
    "respect to other objects in the image, as well as its position within the image and its basic attributes."
)
REFCOCO_PLUS_BEGIN = (
    "<image>\nI will provide you with only one region containing only one object, although there may be other "
    "objects present in the image. It is recommended that you describe the object's relative position with "
    "respect to other objects in the image and its basic attibuts, you should not give its position within the "
    "image."
)
STAGE2_SOURCES = ["coco_instances", "refcoco", "refcoco+", "refcocog", "pascal_part", "part_imagenet", "vg"]


def records(name: str) -> list[dict]:
    return PARSERS[name].load(SOURCE_FIXTURES[name][0])


def parse(name: str, record: dict, seed: int = 0) -> Sample:
    (sample,) = PARSERS[name].parse(record, rng=random.Random(seed), index=0)
    return sample


def area_to_answer(sample: Sample) -> dict[int, str]:
    """Region area -> answer given for it (the fixture shapes have distinct areas)."""
    areas = [int(m.sum()) for m in sample.decode_masks()]
    return dict(zip(areas, [t.text for t in sample.turns[1::2]], strict=True))


@pytest.mark.parametrize("name", STAGE2_SOURCES)
def test_every_fixture_record_parses(name: str, rng: random.Random) -> None:
    recs = records(name)
    report = parse_records(PARSERS[name], recs, rng=rng)
    assert report.errors == [] and len(report.samples) == len(recs)
    for sample in report.samples:
        texts = [official_text(t.text) for t in sample.turns]
        assert texts[0].startswith("<image>\n") and all(m.any() for m in sample.decode_masks())
        assert len(sample.turns) == 2 * len(sample.regions)


def test_coco_instances_names_categories_in_random_order() -> None:
    record = records("coco_instances")[0]
    sample = parse("coco_instances", record)
    texts = [official_text(t.text) for t in sample.turns]
    assert texts[0] == COCO_BEGIN + "<mask><pos>" and texts[2] == texts[4] == "<mask><pos>"
    assert area_to_answer(sample) == {440: "chair", 420: "frisbee", 164: "chair"}  # crowd region kept
    orders = {tuple(parse("coco_instances", record, seed=s).meta["annotation_ids"]) for s in range(10)}
    assert len(orders) > 1 and all(sorted(o) == [101, 102, 103] for o in orders)


def test_coco_keeps_at_most_20_regions() -> None:
    record = copy.deepcopy(records("coco_instances")[0])
    ann = record["annotations"][0]
    record["annotations"] = [{**ann, "id": i} for i in range(25)]
    sample = parse("coco_instances", record)
    assert len(sample.regions) == 20 and len(set(sample.meta["annotation_ids"])) == 20
    assert [t.text for t in sample.turns[2::2]] == [f"<region{k}>" for k in range(2, 21)]


@pytest.mark.parametrize(
    ("name", "begin"),
    [("refcoco", REFCOCO_BEGIN), ("refcoco+", REFCOCO_PLUS_BEGIN), ("refcocog", REFCOCO_BEGIN)],
)
def test_refcoco_family_answers_with_the_expression(name: str, begin: str) -> None:
    first, second = (parse(name, r) for r in records(name))
    assert first.image.path == "000000000009.jpg"
    assert [official_text(t.text) for t in first.turns] == [begin + "<mask><pos>", first.turns[1].text]
    expected = {
        "refcoco": "red box on the left",
        "refcoco+": "red box",
        "refcocog": "a red rectangle standing upright",
    }
    assert first.turns[1].text == expected[name] and first.task == "referring_description"
    assert second.decode_masks()[0].sum() == 420  # the ellipse


def test_part_sources_answer_category_and_subcategory() -> None:
    pascal = parse("pascal_part", records("pascal_part")[0])
    assert area_to_answer(pascal) == {440: "bus:window", 420: "car:wheel"}
    assert official_text(pascal.turns[0].text).startswith("<image>\nIn the conversation below")
    assert official_text(pascal.turns[0].text).endswith("torso,door,mouth.\n<mask><pos>")
    pin = parse("part_imagenet", records("part_imagenet")[0])
    assert area_to_answer(pin) == {164: "Quadruped Head", 420: "Quadruped Body"}
    assert (
        "format of category subcategory. " in pin.turns[0].text and pin.image.path == "n02085620_10074.JPEG"
    )


def test_vg_asks_short_questions_and_leaves_ignored_regions_out() -> None:
    sample = parse("vg", records("vg")[0], seed=1)
    assert len(sample.regions) == 2 and sorted(sample.meta["annotation_ids"]) == [11, 12]  # 13 is 'ignore'
    questions = [official_text(t.text) for t in sample.turns[0::2]]
    limit = " Answer the question using a short phrase."
    assert questions[0].startswith("<image>\nThis provides an overview of the picture.\n")
    allowed = {q.replace("<region>", "<mask><pos>") + limit for q in VG_QUESTIONS}
    assert questions[0].split("picture.\n", 1)[1] in allowed and questions[1] in allowed
    assert set(area_to_answer(sample).values()) == {"red box on a wall", "a blue plate"}


def test_vg_keeps_at_most_3_regions() -> None:
    record = copy.deepcopy(records("vg")[0])
    record["annotations"] = [{**record["annotations"][1], "id": i} for i in range(6)]
    assert len(parse("vg", record).regions) == 3


@pytest.mark.parametrize(
    ("name", "edit", "problem", "message"),
    [
        ("coco_instances", lambda r: r.update(annotations=[]), NO_REGIONS, "has no annotations"),
        (
            "vg",
            lambda r: [a.update(ignore=True) for a in r["annotations"]],
            NO_REGIONS,
            "all 3 annotations are marked 'ignore'",
        ),
        (
            "coco_instances",
            lambda r: r["annotations"][0].update(category_id=999),
            SCHEMA,
            "category_id 999 is not in",
        ),
        ("refcoco", lambda r: r["image"].pop("caption"), TEXT, "image 'caption' is None"),
        ("vg", lambda r: r["annotations"][0].update(caption=""), TEXT, "annotation 1 'caption'"),
        (
            "coco_instances",
            lambda r: r["annotations"][1].pop("segmentation"),
            SCHEMA,
            "annotation 2: missing key 'segmentation'",
        ),
        ("coco_instances", lambda r: r["image"].pop("height"), SCHEMA, "image: missing key 'height'"),
    ],
)
def test_record_errors(name: str, edit, problem: str, message: str) -> None:
    record = copy.deepcopy(records(name)[0])
    edit(record)
    with pytest.raises(RecordError, match=message) as info:
        parse(name, record)
    assert info.value.problem == problem


def test_an_unpicked_bad_annotation_still_makes_the_record_bad() -> None:
    # all annotations are checked before the random pick, so validity does not depend on the draw
    record = copy.deepcopy(records("coco_instances")[0])
    ann = record["annotations"][0]
    record["annotations"] = [{**ann, "id": i} for i in range(25)]
    record["annotations"][-1]["segmentation"] = [[1, 1, 2, 2]]
    with pytest.raises(RecordError, match="region 25: polygon 0 has 4"):
        parse("coco_instances", record)


def test_coco_file_level_defects(tmp_path) -> None:
    data = json.loads(SOURCE_FIXTURES["coco_instances"][0].read_text())
    dup = copy.deepcopy(data)
    dup["annotations"][1]["id"] = dup["annotations"][0]["id"]
    (tmp_path / "dup.json").write_text(json.dumps(dup))
    with pytest.raises(SourceError, match=r"1 duplicate annotation id\(s\), e.g. \[101\]"):
        load_coco_style(tmp_path / "dup.json")
    orphan = copy.deepcopy(data)
    orphan["annotations"][0]["image_id"] = 12345
    (tmp_path / "orphan.json").write_text(json.dumps(orphan))
    with pytest.raises(SourceError, match="image_id names no image"):
        load_coco_style(tmp_path / "orphan.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(SourceError, match="expected a COCO-style object"):
        load_coco_style(tmp_path / "list.json")


def test_coco_save_roundtrip(tmp_path) -> None:
    recs = records("coco_instances")
    save_coco_style(recs[1:], tmp_path / "kept.json")
    again = load_coco_style(tmp_path / "kept.json")
    assert [r["image"] for r in again] == [recs[1]["image"]]
    assert again[0]["annotations"] == recs[1]["annotations"] and set(again[0]["categories"]) == {62, 34, 13}
