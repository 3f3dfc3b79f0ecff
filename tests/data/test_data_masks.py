"""osprey.masks: every encoding decodes through pycocotools, bad input fails with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from osprey import masks
from osprey.masks import MaskError

H, W = 12, 16
RECT = [2.0, 3.0, 10.0, 3.0, 10.0, 9.0, 2.0, 9.0]  # x 2..10, y 3..9 -> 8 x 6 pixels


def rect_mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[3:9, 2:10] = True
    return m


def test_polygon_decodes_to_bool_mask_at_image_size() -> None:
    mask = masks.decode_polygons([RECT], H, W)
    assert mask.shape == (H, W) and mask.dtype == bool
    np.testing.assert_array_equal(mask, rect_mask())


def test_polygons_of_one_region_are_merged() -> None:
    other = [12.0, 0.0, 15.0, 0.0, 15.0, 2.0]
    mask = masks.decode_segmentation([RECT, other], H, W)
    assert mask[3:9, 2:10].all() and mask[0, 13] and mask.sum() > rect_mask().sum()


@pytest.mark.parametrize("as_bytes", [False, True])
def test_compressed_rle_roundtrip(as_bytes: bool) -> None:
    rle = masks.encode_rle(rect_mask())
    assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
    if as_bytes:
        rle = {**rle, "counts": rle["counts"].encode()}
    assert masks.infer_kind(rle) == "rle"
    np.testing.assert_array_equal(masks.decode_rle(rle, H, W), rect_mask())


def test_uncompressed_rle_decodes_and_matches_compressed_runs() -> None:
    runs = masks.rle_counts(masks.encode_rle(rect_mask()))
    rle = {"size": [H, W], "counts": runs}
    assert masks.infer_kind(rle) == "uncompressed_rle"
    np.testing.assert_array_equal(masks.decode_segmentation(rle, H, W), rect_mask())
    # same runs as pycocotools' own conversion of the uncompressed form
    assert masks.rle_counts(coco_mask.frPyObjects(rle, H, W)) == runs


def test_box_and_box_helpers() -> None:
    mask = masks.decode_box([2, 3, 8, 6], H, W)
    np.testing.assert_array_equal(mask, rect_mask())
    assert masks.xywh_to_xyxy([2, 3, 8, 6]) == [2, 3, 10, 9]
    assert masks.xyxy_to_xywh([2, 3, 10, 9]) == [2, 3, 8, 6]
    assert masks.mask_box(mask) == [2, 3, 8, 6]
    assert masks.mask_centroid(mask) == pytest.approx((5.5, 5.5))
    assert masks.mask_box(np.zeros((2, 2), bool)) is None


def test_png_mask_any_nonzero_pixel(tmp_path) -> None:
    gray = (rect_mask() * 7).astype(np.uint8)  # any non-zero value is inside
    Image.fromarray(gray).save(tmp_path / "m.png")
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[rect_mask(), 2] = 255  # only the blue channel set
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(masks.decode("png", "m.png", H, W, root=tmp_path), rect_mask())
    np.testing.assert_array_equal(masks.load_png_mask(tmp_path / "rgb.png"), rect_mask())
    with pytest.raises(MaskError, match="is 16x12; expected 12x16"):
        masks.load_png_mask(tmp_path / "m.png", height=W, width=H)
    with pytest.raises(MaskError, match="does not exist"):
        masks.decode("png", "nope.png", H, W, root=tmp_path)


def test_array_masks() -> None:
    np.testing.assert_array_equal(masks.decode("array", rect_mask().astype(np.uint8), H, W), rect_mask())
    with pytest.raises(MaskError, match=r"shape \(16, 12\); expected \(12, 16\)"):
        masks.check("array", np.zeros((W, H)), H, W)


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("polygon", [], "expected a non-empty list of polygons"),
        ("polygon", [[1, 1, 5, 1]], "polygon 0 has 4 coordinates; expected an even number >= 6"),
        ("polygon", [[1, 1, 5, 1, 5]], "has 5 coordinates"),
        ("polygon", [[1, 1, 5, float("nan"), 3, 3]], "coordinate 3 is nan"),
        ("polygon", [[1, 1, 40, 1, 5, 5]], r"spans x 1..40, y 1..5; expected inside the 16x12 image"),
        ("polygon", [RECT, "x"], "polygon 1 is 'x'"),
        ("rle", {"size": [W, H], "counts": "abc"}, r"RLE size \[16, 12\]; expected \[12, 16\]"),
        ("rle", {"size": [H, W], "counts": "~~"}, "has byte 126 at 0"),
        ("rle", {"size": [H, W], "counts": "3"}, "add up to 3; expected 192"),
        ("uncompressed_rle", {"size": [H, W], "counts": [10, 5]}, "add up to 15; expected 192"),
        ("uncompressed_rle", {"size": [H, W], "counts": [200, -8]}, "negative run length -8"),
        ("uncompressed_rle", {"counts": [192]}, "expected a dict with 'size' and 'counts'"),
        ("box", [1, 1, 0, 3], "width 0 and height 3; expected both > 0"),
        ("box", [1, 1, 3], r"expected \[x, y, w, h\]"),
        ("box", [10, 10, 20, 20], "expected inside the 16x12 image"),
        ("circle", [1], "unknown mask kind 'circle'"),
    ],
)
def test_bad_masks_name_the_value_and_the_expectation(kind: str, data: object, message: str) -> None:
    with pytest.raises(MaskError, match=message):
        masks.check(kind, data, H, W)
    with pytest.raises(MaskError, match=message):
        masks.decode(kind, data, H, W)


def test_bad_image_size_and_unknown_segmentation_type() -> None:
    with pytest.raises(MaskError, match="image height 0; expected a positive int"):
        masks.check("polygon", [RECT], 0, W)
    with pytest.raises(MaskError, match="segmentation of type int"):
        masks.infer_kind(7)
    with pytest.raises(MaskError, match="'counts' is a float"):
        masks.infer_kind({"size": [1, 1], "counts": 1.0})


def test_coordinates_on_the_outer_edge_are_accepted() -> None:
    # vertices at x == width (the outer pixel edge) are what annotation tools write
    mask = masks.decode_polygons([[0, 0, W, 0, W, H, 0, H]], H, W)
    assert mask.all()


def test_masks_to_tensor() -> None:
    t = masks.masks_to_tensor([rect_mask(), ~rect_mask()])
    assert t.shape == (2, H, W) and t.dtype == torch.float32
    assert t.sum().item() == H * W and set(t.unique().tolist()) == {0.0, 1.0}
    assert masks.masks_to_tensor([]).shape == (0, 0, 0)
    with pytest.raises(MaskError, match="expected one"):
        masks.masks_to_tensor([rect_mask(), np.zeros((3, 3), bool)])


def test_resize_nearest_keeps_masks_binary_and_bilinear_is_soft() -> None:
    t = masks.masks_to_tensor([rect_mask()])
    up = masks.resize_masks(t, (24, 32), mode="nearest")
    assert up.shape == (1, 24, 32) and set(up.unique().tolist()) == {0.0, 1.0}
    assert up.sum().item() == 4 * rect_mask().sum()  # exact 2x upscale
    soft = masks.resize_masks(t, (5, 7), mode="bilinear")
    assert soft.shape == (1, 5, 7) and soft.min() >= 0 and soft.max() <= 1
    assert ((soft > 0) & (soft < 1)).any()
    small = masks.resize_mask(rect_mask(), (6, 8))
    assert small.dtype == bool and small.shape == (6, 8) and small.sum() == rect_mask().sum() // 4
    assert masks.resize_masks(torch.zeros(0, H, W), (4, 4)).shape == (0, 4, 4)
    with pytest.raises(MaskError, match="resize mode 'cubic'"):
        masks.resize_masks(t, (4, 4), mode="cubic")  # type: ignore[arg-type]


def _reference_runs(s: bytes) -> list[int]:
    """pycocotools' rleFrString, character by character (the reference for the vectorised decoder)."""
    runs, p = [], 0
    while p < len(s):
        value, shift, more = 0, 0, True
        while more:
            c = s[p] - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    return runs


def test_compressed_rle_decoding_matches_the_reference_and_pycocotools() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        mask = rng.random((h, w)) < rng.random()
        counts = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
        runs = masks.rle_counts({"size": [h, w], "counts": counts})
        assert runs == _reference_runs(counts)
        assert np.array_equal(masks.decode_rle({"size": [h, w], "counts": counts.decode()}, h, w), mask)
    for _ in range(2000):  # any string of valid characters whose runs fit in 12 groups
        s = bytes(rng.integers(48, 112, int(rng.integers(1, 30))).astype(np.uint8))
        if s[-1] - 48 & 0x20 or max(len(g) for g in _groups(s)) > masks.MAX_RUN_GROUPS:
            continue
        assert masks.rle_counts({"counts": s}) == _reference_runs(s), s


def _groups(s: bytes) -> list[bytes]:
    out, start = [], 0
    for p, b in enumerate(s):
        if not (b - 48) & 0x20:
            out.append(s[start:p + 1])
            start = p + 1
    return out


def test_hostile_compressed_rle_is_refused_in_linear_time() -> None:
    import time

    start = time.perf_counter()
    with pytest.raises(MaskError, match="groups of 5 bits"):
        masks.check("rle", {"size": [10, 10], "counts": "o" * 599_999 + "1"}, 10, 10)  # 20 s before
    with pytest.raises(MaskError, match="ends inside a run"):
        masks.rle_counts({"counts": "P" * 1000})
    with pytest.raises(MaskError, match="byte 32 at 2"):
        masks.rle_counts({"counts": "00 0"})
    with pytest.raises(MaskError, match="add up to"):
        masks.check("rle", {"size": [10, 10], "counts": "1" * 4_000_000}, 10, 10)
    assert time.perf_counter() - start < 3.0
    runs = masks.rle_counts({"counts": [2**70, 1]})  # huge uncompressed runs: exact, and refused by the sum
    assert runs == [2**70, 1]
    with pytest.raises(MaskError, match="add up to"):
        masks.check("rle", {"size": [1, 1], "counts": [2**70, 1]}, 1, 1)
