"""Region-focused records (osprey.curate.focus) on the synthetic world's official files."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest

from osprey.curate.focus import focus_file, focus_records
from osprey.data import parsers
from osprey.synthetic import build_records
from osprey.synthetic.writer import OSPREY_FILES


@pytest.mark.parametrize("subset", ["short_form", "part_level"])
def test_focused_records_keep_every_answer_on_the_regions_its_question_names(written_split, tmp_path, subset):
    manifest, scenes = written_split
    source = Path(manifest.out_dir) / manifest.files[subset]
    target = tmp_path / "focused.json"
    count = focus_file(source, target)
    focused = json.loads(target.read_text())
    assert count == len(focused) > len(scenes)

    parser = parsers.PARSERS[Path(OSPREY_FILES[subset]).stem]
    report = parsers.parse_records(parser, focused, rng=random.Random(0))
    assert not report.errors, report.errors[:3]

    # Expected: every question of the scene, its answer and the masks of the regions it names, in order.
    expected = []
    for scene in scenes.values():
        for item in build_records(scene, [subset])[subset].turns:
            expected.append((item.answer, [ref.mask(scene) for ref in item.regions]))
    got = []
    for sample, record in zip(report.samples, focused):
        masks = sample.decode_masks()
        assert len(masks) == len(record["annotation"]) <= 2
        answers = [t.text for t in sample.turns if t.role == "assistant"]
        questions = [t.text for t in sample.turns if t.role == "user"]
        for question, answer in zip(questions, answers):
            named = sorted({int(k) for k in re.findall(r"region(\d+)\b", question.split("picture: ")[-1])})
            assert named == list(range(1, len(masks) + 1))  # renumbered from 1
            got.append((answer, masks))
    assert len(got) == len(expected)
    # Same multiset of (answer, masks): compare as sorted keys of the answer and the masks' pixel counts.
    def key(pair):
        answer, masks = pair
        return answer, tuple(int(m.sum()) for m in masks), tuple(int(np.flatnonzero(m)[0]) for m in masks)

    assert sorted(map(key, got)) == sorted(map(key, expected))


def test_focus_renumbers_in_order_of_first_mention_and_groups_turns():
    record = {
        "id": 7, "file_name": "x.png", "height": 4, "width": 4,
        "annotation": [{"id": k} for k in (1, 2, 3)],
        "conversations": [
            {"from": "human", "value": "What colour is <region3>?"}, {"from": "gpt", "value": "red"},
            {"from": "human", "value": "Is <region3> left of <region1>?"}, {"from": "gpt", "value": "left"},
            {"from": "human", "value": "What is <region3>?"}, {"from": "gpt", "value": "car"},
            {"from": "human", "value": "Describe the picture."}, {"from": "gpt", "value": "dropped"},
        ],
    }  # fmt: skip
    out = focus_records([record])
    assert [[a["id"] for a in r["annotation"]] for r in out] == [[3], [3, 1]]
    assert [c["value"] for c in out[0]["conversations"]] == [
        "What colour is <region1>?", "red", "What is <region1>?", "car"]
    assert [c["value"] for c in out[1]["conversations"]] == ["Is <region1> left of <region2>?", "left"]
    assert out[0]["id"] == 7 and out[0]["file_name"] == "x.png"


def test_focus_refuses_a_question_about_a_missing_region():
    record = {"annotation": [{"id": 1}], "conversations": [
        {"from": "human", "value": "What is <region2>?"}, {"from": "gpt", "value": "car"}]}
    with pytest.raises(ValueError, match=r"record 0: .*region\(s\) \[2\]; the record has 1 region"):
        focus_records([record])


def test_select_questions_keeps_only_the_named_question_types(written_split, tmp_path):
    from osprey.curate.focus import select_file, select_questions
    from osprey.synthetic.templates import SHORT_FORM

    manifest, _ = written_split
    focused = focus_records(json.loads((Path(manifest.out_dir) / manifest.files["short_form"]).read_text()))
    relations = [t for kind in ("relation_horizontal", "relation_vertical", "relation_size") for t in SHORT_FORM[kind]]
    count = select_file(Path(manifest.out_dir) / manifest.files["short_form"], tmp_path / "rel.json", relations)
    selected = select_questions(focused, relations)
    assert 0 < len(selected) < len(focused) and count > 0
    answers = {a["value"] for r in selected for a in r["conversations"][1::2]}
    assert answers <= {"left", "right", "above", "below", "larger", "smaller"}
    for record in selected:
        assert len(record["annotation"]) == 2  # relations name two regions; focus kept only those
        assert all(re.search(r"(left|right|above|below|larger|smaller|bigger)", q["value"])
                   for q in record["conversations"][::2])
    # Every relation question of the focused file is kept, with its own answer.
    all_pairs = [(q["value"], a["value"]) for r in focused for q, a in zip(r["conversations"][::2], r["conversations"][1::2])]
    kept_pairs = [(q["value"], a["value"]) for r in selected for q, a in zip(r["conversations"][::2], r["conversations"][1::2])]
    assert kept_pairs == [p for p in all_pairs if p[1] in answers and " or " in p[0]]
    with pytest.raises(ValueError, match="at least one"):
        select_questions(focused, [])
