"""What the bundled model says about itself: the note (API, demo, CLI) and the model answers.json names."""

from __future__ import annotations

import json
from types import SimpleNamespace

from osprey.cli import main
from osprey.model.loading import BUNDLED, BUNDLED_NOTE, is_bundled, model_label
from osprey.serve.service import RegionService
from osprey.serve.ui import page


def _note(model_name: str, random_init: bool) -> str | None:
    """``RegionService.note`` for a service of that model (the property reads only these two fields)."""
    return RegionService.note.fget(SimpleNamespace(model_name=model_name, random_init=random_init))


def test_the_bundled_model_notes_its_limits_once_and_how_to_load_osprey_7b(tiny_service):
    assert "synthetic world" in BUNDLED_NOTE and "--model /path/to/Osprey-7b" in BUNDLED_NOTE
    assert _note("bundled", False) == BUNDLED_NOTE == _note(str(BUNDLED), False)
    assert _note("/some/Osprey-7b", False) is None
    assert "RANDOM" in tiny_service.note and tiny_service.note == _note("tiny", True)
    assert page(note=_note("bundled", False)).count("synthetic world") == 1


def test_model_label_names_what_answered():
    assert model_label("bundled") == f"bundled (osprey-small, {BUNDLED})" and is_bundled(BUNDLED)
    assert model_label("tiny") == "tiny (preset, random weights)" and not is_bundled("tiny")
    assert model_label("runs/x/..//x").endswith("/runs/x")


def test_describe_writes_the_model_that_answered(tmp_path, capsys):
    assert main(["describe", "--model", "tiny", "--max-new-tokens", "2", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "answers.json").read_text())
    assert record["model"] == "tiny (preset, random weights)"
    assert "synthetic world" not in capsys.readouterr().err  # the bundled note is for the bundled model only
