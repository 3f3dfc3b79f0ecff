"""osprey.data.sample: the one sample format and its invariants."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from osprey.data import sample as sample_mod
from osprey.data.errors import CONVERSATION, REGION_REFS
from osprey.data.sample import ImageRef, RegionMask, Sample, SampleError, Turn, official_text, region_mentions

RECT = [[2.0, 3.0, 10.0, 3.0, 10.0, 9.0, 2.0, 9.0]]


def region() -> RegionMask:
    return RegionMask.from_segmentation(RECT, 12, 16)


def build(texts: list[str], n_regions: int = 2) -> Sample:
    turns = tuple(Turn("user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts))
    return Sample(
        "s:0", ImageRef("a.jpg", 12, 16), tuple(region() for _ in range(n_regions)), turns, "s", "t"
    )


def test_valid_sample_keeps_masks_lazy_and_decodes_on_demand() -> None:
    s = build(["<image>\nWhat is <region1> next to <region2>?", "A box."])
    assert s.regions[0].kind == "polygon" and s.regions[0].data is RECT  # raw annotation kept
    masks = s.decode_masks()
    assert len(masks) == 2 and masks[0].shape == (12, 16) and masks[0].sum() == 48


def test_region_tags_render_to_official_tokens() -> None:
    text = "region1<region1>,region2<region2>. What is region1?"
    assert official_text(text) == "region1<mask><pos>,region2<mask><pos>. What is region1?"
    assert region_mentions(text) == [1, 2]


def test_repeated_mentions_are_allowed() -> None:
    build(["<image>\n<region1> and <region2>", "ok", "and <region1> again?", "yes"])


@pytest.mark.parametrize(
    ("texts", "n", "problem", "message"),
    [
        ([], 1, CONVERSATION, "no turns"),
        (["What is <region1>?", "x"], 1, CONVERSATION, r"expected '<image>\\n'"),
        (["<image>\n<region1>", "x", "<image> again", "y"], 1, CONVERSATION, "2 '<image>' tokens"),
        (["<image>\n<region3>", "x"], 2, REGION_REFS, r"region\(s\) \[3\]; expected 1..2"),
        (
            ["<image>\n<region1>", "x"],
            2,
            REGION_REFS,
            r"region\(s\) \[2\] have a mask but are never mentioned",
        ),
        (["<image>\n<region2> <region1>", "x"], 2, REGION_REFS, r"order \[2, 1\]; expected 1..2 in order"),
        (
            ["<image>\n<region1>", "It is <region1>."],
            1,
            REGION_REFS,
            r"assistant turn 1 holds region tag\(s\) \[1\]",
        ),
    ],
)
def test_broken_invariants_are_refused(texts: list[str], n: int, problem: str, message: str) -> None:
    with pytest.raises(SampleError, match=message) as info:
        build(texts, n)
    assert info.value.problem == problem


def test_turn_roles_must_alternate_from_user() -> None:
    turns = (Turn("assistant", "<image>\nhi"),)
    with pytest.raises(SampleError, match="turn 0 has role 'assistant'; expected 'user'"):
        Sample("s:0", ImageRef("a.jpg"), (), turns, "s", "t")


def test_turn_comes_from_the_text_package_when_it_exists() -> None:
    if importlib.util.find_spec("osprey.text.conversation") is not None:
        from osprey.text.conversation import Turn as TextTurn

        assert sample_mod.Turn is TextTurn
    assert Turn("user", "x").role == "user"


def test_region_mask_check_reports_bad_annotation() -> None:
    bad = RegionMask("polygon", [[1, 1, 2, 2]], 12, 16)
    with pytest.raises(ValueError, match="4 coordinates"):
        bad.check()
    with pytest.raises(SampleError, match="region 1: polygon 0 has 4 coordinates"):
        sample_mod.check_regions([bad])
    assert isinstance(region().decode(), np.ndarray)
