"""`osprey data show`: a PNG with the image, numbered overlays and the conversation."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from data_fixture_paths import BROKEN, IMAGES, SOURCE_FIXTURES
from PIL import Image

from osprey.data.cli import main
from osprey.data.parsers import PARSERS
from osprey.data.show import region_color, render_sample

pytest.importorskip("matplotlib")


def test_render_overlays_region_colours(tmp_path: Path) -> None:
    path, images = SOURCE_FIXTURES["osprey_conversation"]
    record = PARSERS["osprey_conversation"].load(path)[0]
    (sample,) = PARSERS["osprey_conversation"].parse(record, rng=random.Random(0), index=0)
    out = render_sample(sample, tmp_path / "a.png", image_root=images)
    png = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert png.shape[1] > png.shape[0] > 200  # image beside the text
    for k in (1, 2):  # each region's outline colour is drawn somewhere
        color = np.array(region_color(k)) * 255
        assert (np.abs(png - color).sum(-1) < 30).any()


def test_show_cli_writes_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, images = SOURCE_FIXTURES["vcr"]
    out = tmp_path / "vcr.png"
    assert (
        main(
            ["show", str(path), "--source", "vcr", "--images", str(images), "--index", "1", "--out", str(out)]
        )
        == 0
    )
    assert Image.open(out).format == "PNG" and "wrote" in capsys.readouterr().out


def test_show_draws_a_missing_image_as_a_canvas(tmp_path: Path) -> None:
    out = tmp_path / "missing.png"
    assert main(["show", str(BROKEN), "--source", "osprey_conversation", "--images", str(IMAGES / "coco"),
                 "--index", "11", "--out", str(out)]) == 0  # fmt: skip
    assert out.stat().st_size > 0


def test_show_refuses_bad_records_and_indices(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    args = ["show", str(BROKEN), "--source", "osprey_conversation", "--out", str(tmp_path / "x.png")]
    assert main([*args, "--index", "5"]) == 1
    assert "record 5 is bad (mask)" in capsys.readouterr().err
    assert main([*args, "--index", "20"]) == 2
    assert "expected 0..19" in capsys.readouterr().err
