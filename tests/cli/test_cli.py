"""The real ``osprey`` console entry point, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osprey.cli import main


def test_describe_bundled_example_writes_overlay_and_json(tmp_path: Path, capsys) -> None:
    assert main(["describe", "--model", "tiny", "--out", str(tmp_path), "--max-new-tokens", "4"]) == 0
    record = json.loads((tmp_path / "answers.json").read_text())
    assert record["random_init"] is True and len(record["regions"]) == 5  # the bundled scene's objects
    with Image.open(tmp_path / "overlay.png") as overlay:
        assert overlay.size == (256, 256)
    assert "RANDOM weights" in capsys.readouterr().err


def test_describe_with_png_mask_and_box(tmp_path: Path) -> None:
    image = tmp_path / "img.png"
    Image.fromarray(np.full((40, 60, 3), 120, dtype=np.uint8)).save(image)
    mask = np.zeros((40, 60), dtype=np.uint8)
    mask[5:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    out = tmp_path / "out"
    code = main(["describe", str(image), "--model", "tiny", "--mask", str(tmp_path / "m.png"), "--box", "30,10,55,35",
                 "--out", str(out), "--max-new-tokens", "3"])
    assert code == 0
    assert len(json.loads((out / "answers.json").read_text())["regions"]) == 2


def test_describe_rejects_a_bad_box(tmp_path: Path) -> None:
    image = tmp_path / "img.png"
    Image.fromarray(np.zeros((10, 10, 3), dtype=np.uint8)).save(image)
    with pytest.raises(SystemExit, match="x0,y0,x1,y1"):
        main(["describe", str(image), "--box", "1,2,3", "--out", str(tmp_path)])


def test_help_lists_the_subcommands(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("describe", "parity", "convert"):
        assert command in out


def test_data_subcommands_are_wired(tmp_path: Path) -> None:
    assert main(["data", "synth", str(tmp_path / "world"), "--images", "3", "--seed", "1", "--no-progress"]) == 0
    annotations = tmp_path / "world" / "annotations" / "osprey_short_form.json"
    assert main(["data", "validate", str(annotations), "--source", "osprey_short_form",
                 "--images", str(tmp_path / "world" / "images")]) == 0
