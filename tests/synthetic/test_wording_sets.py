"""The held-out wordings are kept apart from every training wording and every training annotation."""

from __future__ import annotations

import json
import re

import pytest

from osprey.data import prompts as data_prompts
from osprey.eval.heldout_wording import heldout_items
from osprey.synthetic import templates
from osprey.synthetic.questions import ALL_SUBSETS, build_records
from osprey.synthetic.seeds import test_seeds as held_out_seeds
from osprey.synthetic.seeds import train_seeds
from osprey.synthetic.world import generate_scene
from osprey.synthetic.writer import EVAL_FILE, OSPREY_FILES, write_split

HELDOUT = [t for ts in templates.HELDOUT.values() for t in ts]


def _pattern(template: str) -> re.Pattern[str]:
    """A template as a regex over written questions: region slots -> <regionK>, fields -> words."""
    parts = re.split(r"(\{\d\}|\{[a-z]+\})", template)
    return re.compile("".join(r"<region\d+>" if re.fullmatch(r"\{\d\}", p) else r"\w+" if p.startswith("{")
                              else re.escape(p) for p in parts if p), re.IGNORECASE)


def _official_training_questions() -> list[str]:
    """The question pools the training loaders draw from (data.prompts), as plain strings."""
    pools = [v for v in vars(data_prompts).values() if isinstance(v, tuple) and all(isinstance(s, str) for s in v)]
    strings = [s for pool in pools for s in pool] + [v for v in vars(data_prompts).values() if isinstance(v, str)]
    questions = [s for s in strings if "<region" in s or "?" in s]  # (not the category name lists)
    assert len(questions) > 30
    return questions


def test_no_heldout_wording_is_a_training_template():
    training = templates.training_templates()
    assert len(training) > 90 and len(HELDOUT) >= 20
    for held in HELDOUT:
        for trained in training + _official_training_questions():
            assert held.lower() not in trained.lower() and trained.lower() not in held.lower(), (held, trained)


def test_training_has_many_more_wordings_than_the_core_set():
    full, core = templates.wordings(training=True), templates.wordings(training=False)
    for name in ("short_form", "part_level", "conversation"):
        for kind, wordings in getattr(core, name).items():
            extended = getattr(full, name)[kind]
            assert extended[: len(wordings)] == wordings  # the core ones first, unchanged
            if kind != "occlusion":  # its answers depend on the wording ("Is anything ..." / "Is ... visible")
                assert len(extended) > len(wordings), (name, kind)
    assert len(full.positive_negative) >= 2 * len(core.positive_negative)


@pytest.fixture(scope="module")
def training_split(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    write_split(out, train_seeds(30), split="train")
    return out


def _human_turns(split_dir) -> list[str]:
    turns = []
    for name in OSPREY_FILES.values():
        for record in json.loads((split_dir / "annotations" / name).read_text()):
            turns += [t["value"] for t in record.get("conversations", []) if t["from"] == "human"]
    return turns


def test_no_training_annotation_asks_a_heldout_wording(training_split):
    turns = _human_turns(training_split)
    assert len(turns) > 1000
    for held in HELDOUT:
        pattern = _pattern(held)
        hits = [t for t in turns if pattern.search(t)]
        assert not hits, (held, hits[:3])


def test_training_scenes_use_the_paraphrases_and_test_scenes_only_the_core_wordings(training_split, tmp_path):
    core = templates.wordings(training=False)
    core_patterns = [_pattern(t) for t in (
        *[t for table in (core.short_form, core.part_level, core.conversation) for ts in table.values() for t in ts],
        *core.positive_negative)]
    turns = _human_turns(training_split)
    paraphrased = [t for t in turns if not any(p.fullmatch(t.split(". ")[-1]) or p.fullmatch(t) for p in core_patterns)]
    assert len(paraphrased) > 0.2 * len(turns)
    write_split(tmp_path, held_out_seeds(8), split="test")
    for line in (json.loads(s) for s in (tmp_path / EVAL_FILE).read_text().splitlines()):
        if line["subset"] in ("short_form", "part_level", "positive_negative"):
            assert any(p.fullmatch(line["question"]) for p in core_patterns), line["question"]


def test_heldout_questions_use_heldout_wordings_and_never_reach_a_training_record():
    patterns = [_pattern(t) for t in HELDOUT]
    for seed in held_out_seeds(10):
        scene = generate_scene(seed)
        items = heldout_items(scene)
        assert items and all(any(p.fullmatch(i.question()) for p in patterns) for i in items)
        training_questions = {t.question() for r in build_records(scene, ALL_SUBSETS).values() for t in r.turns}
        assert not training_questions & {i.question() for i in items}
