"""What the bundled model says about itself: the note (API, demo, CLI) and the model answers.json names."""

from __future__ import annotations

import json

from osprey.cli import main
from osprey.model.loading import BUNDLED, BUNDLED_NOTE, is_bundled, model_label
from osprey.serve.service import RegionService
from osprey.serve.ui import page


def test_the_bundled_model_notes_its_limits_once_and_how_to_load_osprey_7b():
    assert "synthetic world" in BUNDLED_NOTE and "--model /path/to/Osprey-7b" in BUNDLED_NOTE
    service = RegionService(predictor=None, provider=None, model_name="bundled", random_init=False)  # (note only)
    assert service.note == BUNDLED_NOTE
    assert RegionService(None, None, str(BUNDLED), False).note == BUNDLED_NOTE
    assert RegionService(None, None, "/some/Osprey-7b", False).note is None
    assert "RANDOM" in RegionService(None, None, "tiny", True).note
    assert page(note=service.note).count("synthetic world") == 1


def test_model_label_names_what_answered():
    assert model_label("bundled") == f"bundled (osprey-small, {BUNDLED})" and is_bundled(BUNDLED)
    assert model_label("tiny") == "tiny (preset, random weights)" and not is_bundled("tiny")
    assert model_label("runs/x/..//x").endswith("/runs/x")


def test_describe_writes_the_model_that_answered(tmp_path, capsys):
    assert main(["describe", "--model", "tiny", "--max-new-tokens", "2", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "answers.json").read_text())
    assert record["model"] == "tiny (preset, random weights)"
    assert "synthetic world" not in capsys.readouterr().err  # the bundled note is for the bundled model only
