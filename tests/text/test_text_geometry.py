"""Region geometry text (``region_text="geometry"``): the string, and where rendering puts it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osprey.text.conversation import Turn, get_template
from osprey.text.geometry import region_geometry_text, region_texts
from osprey.text.render import render_conversation
from osprey.text.tokenizer import SlotIds


def test_geometry_text_is_centroid_percent_and_area_per_mille() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[10:30, 20:60] = True  # centroid (40, 20) px -> 20 %, 20 %; 800 px of 20000 -> 40 per mille
    assert region_geometry_text(mask) == "{x=20 y=20 area=040}"
    assert region_geometry_text(torch.from_numpy(mask).float()) == "{x=20 y=20 area=040}"
    full = np.ones((8, 8), dtype=np.uint8)
    assert region_geometry_text(full) == "{x=50 y=50 area=999}"
    corner = np.zeros((10, 10), dtype=bool)
    corner[9, 9] = True  # the last pixel stays below 100 %
    assert region_geometry_text(corner) == "{x=95 y=95 area=010}"
    assert region_geometry_text(np.zeros((4, 4))) == "{area=000}"
    small = np.zeros((100, 100), dtype=bool)
    small[2:6, 3:7] = True  # fixed widths: x 5 -> "05", y 4 -> "04", 16 px of 10000 -> 2 per mille
    assert region_geometry_text(small) == "{x=05 y=04 area=002}"


def test_geometry_text_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        region_geometry_text(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="region_text must be one of"):
        region_texts([np.ones((2, 2))], "boxes")
    assert region_texts([np.ones((2, 2))], "none") is None


def test_render_writes_the_text_after_every_slot_of_its_region(llama) -> None:
    slots = SlotIds.for_tokenizer(llama)
    turns = [Turn("user", "<image>\nIs <region2> left of <region1>? And <region2>?"), Turn("assistant", "yes")]
    kwargs = dict(template=get_template("osprey_v1"), tokenizer=llama, slots=slots, num_image_tokens=2,
                  num_regions=2, add_generation_prompt=False)
    plain = render_conversation(turns, **kwargs)
    texts = ["{x=10 y=20 area=005}", "{x=70 y=30 area=120}"]
    with_text = render_conversation(turns, **kwargs, region_texts=texts)
    assert with_text.region_order == plain.region_order == [1, 0, 1]
    ids = with_text.input_ids
    pos_at = [i for i, t in enumerate(ids) if t == slots.pos]
    decoded = [llama.decode(ids[p + 1 : p + 30]) for p in pos_at]
    assert decoded[0].startswith(texts[1]) and decoded[1].startswith(texts[0]) and decoded[2].startswith(texts[1])
    # Only the prompt grows: the supervised answer is the same.
    assert [t for t, lab in zip(ids, with_text.labels, strict=True) if lab != -100] == [
        t for t, lab in zip(plain.input_ids, plain.labels, strict=True) if lab != -100
    ]
    with pytest.raises(ValueError, match="region_texts has 1 entries for 2 region"):
        render_conversation(turns, **kwargs, region_texts=texts[:1])
