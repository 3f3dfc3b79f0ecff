"""Lenient data mode and an RLE whose ``size`` is not the record's: decoded at its own size and
stretched over the image (as the official decode + mask-extractor interpolation place it), counted
as ``rle_size_rescaled``; strict mode still drops the record."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osprey.config import tiny
from osprey.data.dataset import PARSE_FAILED, ModelTransform, RegionDataset, Skipped
from osprey.data.lenient import repair_record
from osprey.data.mixtures import mixture_from_dict
from osprey.masks import decode_segmentation, encode_rle
from osprey.model.language_model import tokenizer_for
from osprey.model.osprey import build_model

H, W = 8, 12  # the record's size


def _small_mask() -> np.ndarray:
    mask = np.zeros((4, 6), dtype=bool)  # the RLE's own size: half the record's
    mask[1:3, 0:2] = True  # rows 1-2, columns 0-1
    return mask


def _stretched() -> np.ndarray:
    big = np.zeros((H, W), dtype=bool)
    big[2:6, 0:4] = True  # the same place, twice the size
    return big


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(int)
    runs, value, n = [], 0, 0
    for v in flat:
        if v != value:
            runs.append(n)
            value, n = v, 0
        n += 1
    runs.append(n)
    return {"size": list(mask.shape), "counts": runs}


@pytest.mark.parametrize("form", ["compressed", "uncompressed"])
def test_a_mismatched_rle_is_decoded_at_its_own_size_and_stretched(form):
    rle = encode_rle(_small_mask()) if form == "compressed" else _uncompressed(_small_mask())
    record = {"file_name": "a.jpg", "height": H, "width": W,
              "annotation": [{"segmentation": rle}, {"segmentation": encode_rle(_stretched())}]}
    counts: Counter[str] = Counter()
    fixed = repair_record(record, "osprey_short_form", counts)
    assert counts == {"rle_size_rescaled": 1}  # the second RLE is already the record's size
    seg = fixed["annotation"][0]["segmentation"]
    assert seg["size"] == [H, W]
    assert np.array_equal(decode_segmentation(seg, H, W), _stretched())
    assert fixed["annotation"][1]["segmentation"] == record["annotation"][1]["segmentation"]
    assert record["annotation"][0]["segmentation"] == rle  # the original is untouched


def test_runs_that_do_not_fill_the_rle_size_are_left_for_the_strict_check():
    bad = {"size": [4, 6], "counts": [3, 4]}  # 7 pixels, not 24
    counts: Counter[str] = Counter()
    fixed = repair_record({"height": H, "width": W, "annotation": [{"segmentation": bad}]}, "osprey_short_form", counts)
    assert fixed["annotation"][0]["segmentation"] == bad and not counts


def test_coco_layout_takes_the_size_from_the_image_entry():
    record = {"image": {"id": 1, "file_name": "a.jpg", "height": H, "width": W},
              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": encode_rle(_small_mask())}],
              "categories": {1: {"id": 1, "name": "cat"}}}
    counts: Counter[str] = Counter()
    fixed = repair_record(record, "coco_instances", counts)
    assert counts == {"rle_size_rescaled": 1}
    assert np.array_equal(decode_segmentation(fixed["annotations"][0]["segmentation"], H, W), _stretched())


def _world(tmp_path: Path) -> Path:
    Image.fromarray(np.full((H, W, 3), 128, dtype=np.uint8)).save(tmp_path / "a.jpg")
    record = {"id": 1, "file_name": "a.jpg", "height": H, "width": W,
              "annotation": [{"bbox": [0, 2, 4, 4], "segmentation": encode_rle(_small_mask())}],
              "conversations": [{"from": "human", "value": "What is <region1>?"}, {"from": "gpt", "value": "A grey patch."}]}
    (tmp_path / "short.json").write_text(json.dumps([record]))
    return tmp_path


def _dataset(root: Path, *, lenient: bool) -> RegionDataset:
    model = build_model(tiny())
    transform = ModelTransform.for_model(model, tokenizer_for(model.config.language_model))
    mixture = mixture_from_dict({"name": "one", "entries": [
        {"parser": "osprey_short_form", "annotations": "short.json", "images": "."}]}).under(root)
    return RegionDataset(mixture, transform, lenient=lenient)


def test_strict_drops_the_record_and_lenient_trains_on_it_counted(tmp_path):
    root = _world(tmp_path)
    strict = _dataset(root, lenient=False)[0]
    assert isinstance(strict, Skipped) and strict.reason == PARSE_FAILED and "RLE size [4, 6]" in strict.detail
    example = _dataset(root, lenient=True)[0]
    assert not isinstance(example, Skipped)
    assert example.repaired == {"rle_size_rescaled": 1}
    assert example.masks.shape == (1, H, W)
    assert np.array_equal(example.masks[0].numpy() > 0.5, _stretched())
