"""VCR parser: official template, metadata from the image folder, off-by-one in object names fixed."""

from __future__ import annotations

import copy
import json
import random

import pytest
from data_fixture_paths import SOURCE_FIXTURES

from osprey.data.errors import SCHEMA, TEXT, RecordError
from osprey.data.parsers import PARSERS, parse_records
from osprey.data.parsers.vcr import load_vcr, save_vcr
from osprey.data.prompts import VCR_REGION_INTROS, VCR_WHY_QUESTIONS
from osprey.data.sample import Sample, official_text

ANNOTATIONS, IMAGES = SOURCE_FIXTURES["vcr"]
BEGIN = "<image>\n.\nThis provides an overview of the picture.\n"


def records() -> list[dict]:
    return load_vcr(ANNOTATIONS, image_root=IMAGES)


def parse(record: dict, seed: int = 0) -> Sample:
    (sample,) = PARSERS["vcr"].parse(record, rng=random.Random(seed), index=0)
    return sample


def test_fixture_parses_with_metadata_from_the_image_folder(rng: random.Random) -> None:
    report = parse_records(PARSERS["vcr"], records(), rng=rng)
    assert report.errors == [] and len(report.samples) == 2
    sample = report.samples[0]
    assert sample.image.path.endswith("@0.jpg") and (sample.image.height, sample.image.width) == (48, 64)
    assert [int(m.sum()) for m in sample.decode_masks()] == [440, 396, 164]


def test_turns_follow_the_official_template_with_object_names_fixed() -> None:
    sample = parse(records()[0], seed=5)
    q, a, why, rationale = (official_text(t.text) for t in sample.turns)
    listing = "region1 <mask><pos>,region2 <mask><pos>,region3 <mask><pos>"
    intros = [BEGIN + i.replace("<region>", listing) for i in VCR_REGION_INTROS]
    # numbers are 1-based: "3" is objects[2] ("car"); the official objects[3] would raise IndexError
    question = "What is person at region1 doing next to car at region3?"
    assert q in [i + question for i in intros]
    assert a == "person at region1 is waiting for a ride."
    assert why in VCR_WHY_QUESTIONS
    assert rationale == "person at region1 is standing by car at region3 and looking down the road."
    assert sample.turns[0].text.count("<region") == 3 and sample.task == "reasoning"


def test_intro_and_why_are_drawn_per_call() -> None:
    record = records()[1]
    drawn = {(parse(record, seed=s).turns[0].text, parse(record, seed=s).turns[2].text) for s in range(10)}
    assert len(drawn) > 1


def test_tokenised_fields_are_used_without_the_orig_strings() -> None:
    record = copy.deepcopy(records()[1])
    for key in ("question_orig", "answer_orig", "rationale_orig"):
        del record[key]
    q, a, _, rationale = (t.text for t in parse(record).turns)
    assert q.endswith(",Are person at region1 and person at region2 friends?")  # every intro ends with ","
    assert a == "Yes, they are." and rationale == "They are smiling at each other."


@pytest.mark.parametrize("number", ["0", "4"])
def test_numbers_outside_the_objects_are_errors(number: str) -> None:
    record = copy.deepcopy(records()[0])
    record["answer_orig"] = f"{number} is waiting."
    with pytest.raises(RecordError, match=f"mentions object {number}; expected 1..3") as info:
        parse(record)
    assert info.value.problem == TEXT


def test_inline_geometry_and_missing_metadata() -> None:
    meta_path = IMAGES / records()[0]["metadata_fn"]
    inline = {**load_vcr(ANNOTATIONS)[0], **json.loads(meta_path.read_text())}
    assert [int(m.sum()) for m in parse(inline).decode_masks()] == [440, 396, 164]
    with pytest.raises(RecordError, match=r"metadata .* was not loaded; expected the image folder"):
        parse(load_vcr(ANNOTATIONS)[0])
    broken = load_vcr(ANNOTATIONS, image_root=IMAGES / "nowhere")[0]
    with pytest.raises(RecordError, match="cannot be read"):
        parse(broken)


def test_bad_lines_are_records_with_errors_and_save_restores_the_file(tmp_path) -> None:
    lines = ANNOTATIONS.read_text().splitlines()
    path = tmp_path / "train.jsonl"
    path.write_text(lines[0] + "\n{not json\n\n" + lines[1] + "\n")
    recs = load_vcr(path, image_root=IMAGES)
    report = parse_records(PARSERS["vcr"], recs, rng=random.Random(0))
    assert [(e.index, e.problem) for e in report.errors] == [(1, SCHEMA)]
    assert "line is not JSON" in report.errors[0].reason and len(report.samples) == 2
    save_vcr(recs, tmp_path / "out.jsonl")
    out = (tmp_path / "out.jsonl").read_text().splitlines()
    assert out[1] == "{not json" and json.loads(out[0]) == json.loads(lines[0])  # no attached metadata


def test_polygon_and_count_errors() -> None:
    record = copy.deepcopy(records()[0])
    record["_metadata"]["segms"][1] = []
    with pytest.raises(RecordError, match=r"region 2 \(person\) has no polygon"):
        parse(record)
    record = copy.deepcopy(records()[0])
    record["objects"] = record["objects"][:2]
    with pytest.raises(RecordError, match="2 objects, 3 boxes, 3 segms"):
        parse(record)
