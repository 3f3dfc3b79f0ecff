"""The description task keeps the text between the first and second ':' (the official script)."""

from __future__ import annotations

import json
from pathlib import Path

from osprey.eval.runner import Answer, Request
from osprey.eval.tasks.judged import JudgedDescription


class _Judge:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def complete(self, messages, **_):
        self.seen.append(messages[-1]["content"])
        return "8 9\nfine"


def _task(tmp_path: Path, name: str, judge, **kw) -> JudgedDescription:
    (tmp_path / "c.json").write_text(json.dumps([{"image": "a.jpg", "prompt": "ctx"}]))
    (tmp_path / "r.json").write_text(json.dumps([{"question_id": "1", "text": "reference"}]))
    return JudgedDescription(name, tmp_path / "q.json", tmp_path / "c.json", tmp_path / "r.json", tmp_path, judge, **kw)


def _answer(text: str) -> Answer:
    meta = {"image": "a.jpg", "category": "description", "question": "q"}
    return Answer(Request(key="1", image=Path("a.jpg"), size=(4, 4), prompt="p", meta=meta), text)


def test_description_answers_keep_the_text_between_the_first_two_colons(tmp_path):
    judge = _Judge()
    _task(tmp_path, "description", judge).score([_answer("region1: a red car: parked</s>")])
    assert "a red car" in judge.seen[0] and "parked" not in judge.seen[0] and "region1" not in judge.seen[0]
    whole = _Judge()
    _task(tmp_path, "description", whole, colon_split=False).score([_answer("region1: a red car: parked")])
    assert "parked" in whole.seen[0]
