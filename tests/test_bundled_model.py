"""The main job: `osprey describe` with no arguments uses the bundled osprey-small on the bundled scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osprey.cli import main
from osprey.inference.loading import BUNDLED, bundled_available, default_model_spec


def test_bundled_model_is_installed_and_small() -> None:
    assert bundled_available(), f"the bundled model is missing at {BUNDLED}"
    assert default_model_spec() == "bundled"
    size = sum(p.stat().st_size for p in BUNDLED.iterdir())
    assert size <= 25 * 1024 * 1024, f"bundled weights are {size / 1e6:.1f} MB; the budget is 25 MB"


@pytest.mark.skipif(not bundled_available(), reason="bundled model not installed")
def test_default_describe_answers_every_region_of_the_example(tmp_path: Path, capsys) -> None:
    assert main(["describe", "--out", str(tmp_path), "--max-new-tokens", "16"]) == 0
    record = json.loads((tmp_path / "answers.json").read_text())
    assert record["random_init"] is False and len(record["regions"]) == 5
    answers = [r["answer"] for r in record["regions"]]
    assert all(a.strip() for a in answers), answers
    assert (tmp_path / "overlay.png").stat().st_size > 1000
    assert "RANDOM" not in capsys.readouterr().err
