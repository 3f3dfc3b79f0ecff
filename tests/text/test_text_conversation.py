"""Conversation templates: the official system prompts, verbatim."""

from __future__ import annotations

import pytest

from osprey.text.conversation import TEMPLATES, get_template


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
