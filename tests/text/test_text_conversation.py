"""Conversation templates: the official system prompts, verbatim."""

from __future__ import annotations

import pytest

from osprey.text.conversation import TEMPLATES, Turn, get_template


def test_training_template_says_user() -> None:
    v1 = get_template("v1")
    assert v1.system == (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    )
    assert (v1.roles, v1.sep, v1.sep2) == (("USER", "ASSISTANT"), " ", "</s>")


def test_eval_template_says_human() -> None:
    assert get_template("osprey_v1").system == (
        "A chat between a curious human and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the human's questions."
    )
    assert set(TEMPLATES) == {"v1", "osprey_v1"}


def test_unknown_template_names_value_and_choices() -> None:
    with pytest.raises(ValueError, match=r"'vicuna'.*\['osprey_v1', 'v1'\]"):
        get_template("vicuna")


def test_plain_is_llavas_pretraining_layout_image_then_supervised_caption() -> None:
    from osprey.text.render import render_conversation
    from osprey.text.tokenizer import SlotIds, llama2_tokenizer

    tokenizer = llama2_tokenizer()
    rendered = render_conversation(
        [Turn("user", "<image>\nDescribe the image briefly."), Turn("assistant", "A cat on a sofa.")],
        template=get_template("plain"), tokenizer=tokenizer, slots=SlotIds(image=-200, mask=32000, pos=32001),
        num_image_tokens=3, num_regions=0, add_generation_prompt=False)
    caption = tokenizer.encode("A cat on a sofa.\n")  # preprocess_plain: image + caption + sep, no eos
    assert rendered.input_ids == [tokenizer.bos_id, -200, -200, -200, *caption]
    assert rendered.labels == [-100] * 4 + caption
