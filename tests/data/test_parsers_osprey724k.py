"""Osprey-724K parsers on real-format fixtures: strings byte for byte as the official loaders build them."""

from __future__ import annotations

import copy
import random

import pytest
from data_fixture_paths import SOURCE_FIXTURES

from osprey.data.errors import CONVERSATION, NO_REGIONS, REGION_REFS, TEXT, RecordError
from osprey.data.parsers import PARSERS, parse_records
from osprey.data.prompts import DETAILED_QUESTIONS
from osprey.data.sample import Sample, official_text

OVERVIEW = "<image>\nThis provides an overview of the picture.\n"
LIMIT = " Answer the question using a single word or phrase."


def records(name: str) -> list[dict]:
    return PARSERS[name].load(SOURCE_FIXTURES[name][0])


def parse(name: str, record: dict, seed: int = 0, index: int = 0) -> Sample:
    (sample,) = PARSERS[name].parse(record, rng=random.Random(seed), index=index)
    return sample


def official_turns(sample: Sample) -> list[str]:
    return [official_text(t.text) for t in sample.turns]


@pytest.mark.parametrize(
    "name",
    ["osprey_short_form", "osprey_conversation", "osprey_detail_description", "osprey_part_level",
     "osprey_lvis_positive_negative"],
)  # fmt: skip
def test_every_fixture_record_parses_and_masks_decode(name: str, rng: random.Random) -> None:
    recs = records(name)
    report = parse_records(PARSERS[name], recs, rng=rng)
    assert report.errors == [] and len(report.samples) == len(recs)
    for record, sample in zip(recs, report.samples, strict=True):
        assert sample.source == name and sample.sample_id.startswith(f"{name}:")
        assert [t.role for t in sample.turns] == ["user", "assistant"] * (len(sample.turns) // 2)
        masks = sample.decode_masks()
        assert len(masks) == len(record["annotation"])
        assert all(m.shape == (record["height"], record["width"]) and m.any() for m in masks)


def test_conversation_matches_official_strings() -> None:
    first, single = records("osprey_conversation")
    sample = parse("osprey_conversation", first)
    assert sample.image.path == "000000000009.jpg"  # file_name.split('_')[-1]
    assert (sample.image.height, sample.image.width) == (48, 64)
    assert official_turns(sample) == [
        OVERVIEW + "Ther are 2 part regions in the picture: region1<mask><pos>,region2<mask><pos>. "
        "What is the color of region1?",
        "The object in region1 is red.",
        "How does region2 relate to region1?",
        "region2 is a blue ellipse to the right of region1.",
    ]
    assert sample.turns[0].text.endswith("region1<region1>,region2<region2>. What is the color of region1?")
    assert official_turns(parse("osprey_conversation", single))[0] == (
        OVERVIEW + "Ther are 1 part region in the picture: region1<mask><pos>. What shape is region1?"
    )
    assert sample.task == "conversation"


@pytest.mark.parametrize("name", ["osprey_short_form", "osprey_part_level"])
def test_short_answers_carry_the_limit_on_every_question(name: str) -> None:
    sample = parse(name, records(name)[0])
    questions = [t.text for t in sample.turns[0::2]]
    assert all(q.endswith(LIMIT) for q in questions)
    assert (
        questions[1]
        == ("What shape is region2?" if name == "osprey_short_form" else "What is the material of region2?")
        + LIMIT
    )


def test_detail_description_questions_are_drawn_per_call() -> None:
    record = records("osprey_detail_description")[0]
    sample = parse("osprey_detail_description", record, seed=3)
    q1, a1, q2, a2 = official_turns(sample)
    assert q1.startswith(OVERVIEW)
    assert q1[len(OVERVIEW) :] in [q.replace("<region>", "<mask><pos>") for q in DETAILED_QUESTIONS]
    assert sample.turns[0].text.count("<region1>") == 1 and "<region2>" in sample.turns[2].text
    assert a1 == "A red rectangle stands on the left side of the picture, upright and flat."
    assert (
        a2 == "A blue ellipse lies to the right of region1, wider than it is tall."
    )  # literal tag made plain
    # same seed, same draw; other seeds (other epochs) draw other questions
    assert official_turns(parse("osprey_detail_description", record, seed=3)) == [q1, a1, q2, a2]
    drawn = {
        tuple(official_turns(parse("osprey_detail_description", record, seed=s))[0::2]) for s in range(8)
    }
    assert len(drawn) > 1


def test_lvis_positive_negative_keeps_file_name_and_binds_mentions() -> None:
    sample = parse("osprey_lvis_positive_negative", records("osprey_lvis_positive_negative")[0])
    assert sample.image.path == "000000000025.jpg"
    assert official_turns(sample) == [
        OVERVIEW + "Is <mask><pos> a frisbee?",
        "Yes",
        "Is <mask><pos> a stop sign?",
        "No",
    ]
    assert [t.text for t in sample.turns[0::2]] == [
        OVERVIEW + "Is <region1> a frisbee?",
        "Is <region2> a stop sign?",
    ]


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        (["Is <region2> a frisbee?", "Is <region1> a stop sign?"], r"mention regions \[2, 1\] with 2 masks"),
        (["Is <region1> a frisbee?", "Is it a stop sign?"], r"mention regions \[1\] with 2 masks"),
        (["Is <region1> a frisbee?", "Is <region1> or <region2> a sign?"], r"\[1, 1, 2\]"),
    ],
)
def test_lvis_mentions_that_the_official_splice_would_misbind_are_errors(
    questions: list[str], message: str
) -> None:
    record = copy.deepcopy(records("osprey_lvis_positive_negative")[0])
    record["conversations"][0]["value"], record["conversations"][2]["value"] = questions
    with pytest.raises(RecordError, match=message) as info:
        parse("osprey_lvis_positive_negative", record, index=4)
    assert info.value.problem == REGION_REFS and info.value.index == 4


def test_reserved_tokens_in_raw_text_are_refused() -> None:
    record = copy.deepcopy(records("osprey_lvis_positive_negative")[0])
    record["conversations"][1]["value"] = "Yes, <mask> is"
    with pytest.raises(RecordError, match="reserved token '<mask>'") as info:
        parse("osprey_lvis_positive_negative", record)
    assert info.value.problem == TEXT


@pytest.mark.parametrize(
    ("change", "problem", "message"),
    [
        ({"conversations": []}, CONVERSATION, "expected a question/answer pair"),
        (
            {"conversations": [{"from": "human", "value": "q"}]},
            CONVERSATION,
            "expected a question/answer pair",
        ),
        (
            {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]},
            CONVERSATION,
            "from 'gpt'",
        ),
        ({"annotation": []}, NO_REGIONS, "'annotation' is empty"),
        ({"width": -3}, "schema", "width -3"),
        (
            {"annotation": [{"bbox": [0, 0, 1, 1], "segmentation": [[1, 2, 3]]}]},
            "mask",
            "region 1: polygon 0 has 3",
        ),
    ],
)
def test_conversation_record_errors(change: dict, problem: str, message: str) -> None:
    record = {**records("osprey_conversation")[1], **change}
    with pytest.raises(RecordError, match=message) as info:
        parse("osprey_conversation", record)
    assert info.value.problem == problem


@pytest.mark.parametrize(
    ("description", "message"),
    [
        (["<region1>: only one"], "1 descriptions for 2 regions"),
        (["<region1>: fine", "no region prefix"], "description 2 'no region prefix'"),
        (["<region1>: fine", "<region2>: "], "description 2"),
    ],
)
def test_description_errors(description: list[str], message: str) -> None:
    record = {**records("osprey_detail_description")[0], "description": description}
    with pytest.raises(RecordError, match=message) as info:
        parse("osprey_detail_description", record)
    assert info.value.problem == TEXT
