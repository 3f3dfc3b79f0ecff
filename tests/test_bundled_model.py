"""The main job: `osprey describe` with no arguments uses the bundled osprey-small on the bundled scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from osprey.cli import main
from osprey.model.loading import BUNDLED, bundled_available, default_model_spec


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


def test_bundled_model_compares_regions_of_the_example() -> None:
    """The bundled model reads region geometry (``region_text="geometry"``): on the example scene it
    answers left/right, above/below and larger/smaller for every pair of objects whose centroids
    (areas) differ clearly, with the gold answers computed here from the masks."""
    import itertools

    from osprey.inference.predictor import Query, RegionPredictor
    from osprey.inference.regions import to_masks
    from osprey.model.loading import load_model

    examples = Path(__file__).resolve().parents[1] / "src" / "osprey" / "assets" / "examples"
    record = json.loads((examples / "scene.json").read_text())
    masks = to_masks([r["segmentation"] for r in record["regions"]], record["height"], record["width"])
    model, tokenizer, _ = load_model("bundled")
    assert model.config.region_text == "geometry"
    predictor = RegionPredictor(model, tokenizer)
    listing = "Ther are 2 part regions in the picture: region1<region1>,region2<region2>. "
    suffix = " Answer the question using a single word or phrase."
    queries, gold = [], []
    for a, b in itertools.permutations(range(len(masks)), 2):
        (ya, xa), (yb, xb) = (np.argwhere(masks[k]).mean(0) for k in (a, b))
        area_a, area_b = int(masks[a].sum()), int(masks[b].sum())
        if abs(xa - xb) > 0.08 * record["width"]:
            queries.append(Query(listing + "Is region1 to the left or to the right of region2?" + suffix, (a, b)))
            gold.append("left" if xa < xb else "right")
        if abs(ya - yb) > 0.08 * record["height"]:
            queries.append(Query(listing + "Is region1 above or below region2?" + suffix, (a, b)))
            gold.append("above" if ya < yb else "below")
        if max(area_a, area_b) >= 1.5 * min(area_a, area_b):
            queries.append(Query(listing + "Is region1 larger or smaller than region2?" + suffix, (a, b)))
            gold.append("larger" if area_a > area_b else "smaller")
    answers = [a.strip().lower().rstrip(".") for a in predictor.ask(examples / "scene.png", masks, queries)]
    right = sum(a == g for a, g in zip(answers, gold, strict=True))
    assert len(gold) >= 20 and set(gold) == {"left", "right", "above", "below", "larger", "smaller"}
    assert right >= 0.85 * len(gold), list(zip(answers, gold, strict=True))
