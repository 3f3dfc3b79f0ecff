"""to_masks: every region format, prompts through a provider, and every error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from osprey.inference.regions import RegionError, check_masks, to_masks
from osprey.masks import encode_rle

H, W = 20, 30


def square(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


class FakeProvider:
    """Records its calls; answers with a square around the first point / the box."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def from_points(self, image, points, labels=None):
        self.calls.append(("points", points, labels))
        x, y = points[0]
        return square(int(x) - 1, int(y) - 1, int(x) + 2, int(y) + 2).astype(np.uint8)

    def from_box(self, image, box):
        self.calls.append(("box", box))
        return square(int(box[0]) + 1, int(box[1]) + 1, int(box[2]) - 1, int(box[3]) - 1)


def test_every_format_decodes_to_the_same_square(tmp_path) -> None:
    expected = square(5, 4, 15, 12)
    rle = encode_rle(expected)
    runs = []  # uncompressed RLE: column-major runs starting with background
    flat = expected.flatten(order="F")
    value, count = False, 0
    for pixel in flat:
        if pixel == value:
            count += 1
        else:
            runs.append(count)
            value, count = pixel, 1
    runs.append(count)
    Image.fromarray(expected.astype(np.uint8) * 255).save(tmp_path / "m.png")
    specs = [
        expected,
        torch.from_numpy(expected.astype(np.float32)),
        rle,
        {"size": [H, W], "counts": runs},
        {"segmentation": rle},
        [[5, 4, 15, 4, 15, 12, 5, 12]],
        {"polygons": [[5, 4, 15, 4, 15, 12, 5, 12]]},
        tmp_path / "m.png",
        str(tmp_path / "m.png"),
        {"png": str(tmp_path / "m.png")},
        {"box": [5, 4, 15, 12]},
    ]
    masks = to_masks(specs, H, W)
    assert masks.shape == (len(specs), H, W) and masks.dtype == bool
    for i, mask in enumerate(masks):
        # Polygons rasterise edge pixels by coverage: allow a one-pixel border difference.
        tolerance = expected.size if i not in (5, 6) else 2 * (10 + 8) + 4
        assert int((mask != expected).sum()) <= (0 if tolerance == expected.size else tolerance), i
    assert to_masks([], H, W).shape == (0, H, W)


def test_points_and_segment_boxes_go_through_the_provider() -> None:
    provider = FakeProvider()
    image = np.zeros((H, W, 3), np.uint8)
    masks = to_masks([{"point": [10, 8]}, {"points": [[3, 3], [6, 6]], "labels": [1, 0]},
                      {"box": [2, 2, 12, 10], "segment": True}], H, W, provider=provider, image=image)
    assert provider.calls == [("points", [[10, 8]], None), ("points", [[3, 3], [6, 6]], [1, 0]),
                              ("box", [2.0, 2.0, 12.0, 10.0])]
    assert masks[0].sum() == 9 and masks[0][8, 10]
    assert np.array_equal(masks[2], square(3, 3, 11, 9))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"point": [3, 4]}, r"region 1 .*needs a mask provider.*provider="),
        ({"box": [5, 5, 2, 8]}, r"region 1: box \[5, 5, 2, 8\] is empty"),
        ({"box": [1, 2, 3]}, r"region 1: box \[1, 2, 3\]; expected \[x0, y0, x1, y1\]"),
        ({"box": [0, 0, 100, 10]}, r"region 1: box .*inside the 30x20 image"),
        ({"size": [H, W + 1], "counts": "abc"}, r"region 1: RLE size \[20, 31\]; expected \[20, 30\]"),
        ({"size": [H, W], "counts": [5, 5]}, r"region 1: RLE run lengths add up to 10; expected 600"),
        ([[1, 2, 3, 4]], r"region 1: polygon 0 has 4 coordinates"),
        (np.ones((H, W + 1)), r"region 1: mask array of shape \(20, 31\); expected the image's \(20, 30\)"),
        ("missing.png", r"region 1: PNG mask 'missing.png' does not exist"),
        ({"shape": "circle"}, r"region 1 has keys \['shape'\]"),
        (3.5, r"region 1 is a float"),
        (np.zeros((H, W)), r"region 1 is empty"),
        ({"points": [[40, 4]]}, r"region 1: point \(40, 4\) lies outside the 30x20 image"),
    ],
)
def test_bad_regions_name_their_index(spec, message) -> None:
    with pytest.raises(RegionError, match=message):
        to_masks([square(0, 0, 3, 3), spec], H, W)


def test_provider_mask_of_the_wrong_size_is_rejected() -> None:
    class Wrong(FakeProvider):
        def from_points(self, image, points, labels=None):
            return np.ones((H + 1, W), bool)

    with pytest.raises(RegionError, match=r"region 0: mask of shape \(21, 30\); expected the image's \(20, 30\)"):
        to_masks([{"point": [1, 1]}], H, W, provider=Wrong(), image=np.zeros((H, W, 3), np.uint8))
    with pytest.raises(RegionError, match="needs the image"):
        to_masks([{"point": [1, 1]}], H, W, provider=FakeProvider())


def test_region_count_limit_and_single_spec() -> None:
    with pytest.raises(RegionError, match="3 regions given; at most 2 per image"):
        to_masks([square(0, 0, 2, 2)] * 3, H, W, max_regions=2)
    with pytest.raises(RegionError, match="a list of region specs, got one dict"):
        to_masks({"box": [0, 0, 2, 2]}, H, W)


def test_check_masks_shapes_and_emptiness() -> None:
    masks = np.stack([square(0, 0, 2, 2), square(3, 3, 5, 5)])
    checked = check_masks(masks, (H, W))
    assert checked.dtype == torch.float32 and checked.shape == (2, H, W)
    assert check_masks([masks[0], masks[1]], (H, W)).shape == (2, H, W)
    with pytest.raises(RegionError, match=r"masks of shape \(2, 20, 30\); expected \(R, 21, 30\)"):
        check_masks(masks, (21, 30))
    with pytest.raises(RegionError, match=r"masks of shape \(20, 30\)"):
        check_masks(masks[0], (H, W))
    masks[1] = False
    with pytest.raises(RegionError, match=r"region 1 is empty.*\[1\]"):
        check_masks(masks, (H, W))


def test_check_question_refuses_huge_region_numbers_and_surrogates_cheaply() -> None:
    from osprey.inference.predictor import check_question

    with pytest.raises(ValueError, match=r"<region999999\.\.\.\(5000 digits\)>"):
        check_question("<region" + "9" * 5000 + ">", 2)
    with pytest.raises(ValueError, match="lone surrogate"):
        check_question("<region1> \ud800", 1)
    assert check_question("<region2> and <region1>", 2) == "<region2> and <region1>"
