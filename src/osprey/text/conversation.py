"""Conversation templates of the official Osprey code (``osprey/conversation.py``), as data.

Both templates are Vicuna-v1 style (``SeparatorStyle.TWO``): they differ only in the system
prompt. Training used ``v1`` ("curious user"); every official eval and demo script uses
``osprey_v1`` ("curious human"). The released numbers include that mismatch, so both are kept
verbatim and the caller picks one explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ConversationTemplate:
    """A two-separator chat layout: ``system + sep + "USER: " + q + sep + "ASSISTANT: " + a + sep2``.

    ``sep2`` ends every answer; the renderer writes it as the tokenizer's eos id.
    """

    name: str
    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    sep: str = " "
    sep2: str = "</s>"
    # "plain": LLaVA's projector-pretraining layout (``conv_osprey_plain``/``preprocess_plain``): the
    # user turn is replaced by ``<image>`` alone, the answer (a caption) follows it with ``sep``
    # ("\n") and no eos; only the caption and ``sep`` are supervised. Single exchange only.
    style: Literal["two", "plain"] = "two"


@dataclass(frozen=True)
class Turn:
    """One message. User text may hold ``<image>`` / ``<regionK>`` placeholders; assistant text is
    always plain text."""

    role: Literal["user", "assistant"]
    text: str


TEMPLATES: dict[str, ConversationTemplate] = {
    "v1": ConversationTemplate(
        name="v1",
        system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions."
        ),
    ),
    "osprey_v1": ConversationTemplate(
        name="osprey_v1",
        system=(
            "A chat between a curious human and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the human's questions."
        ),
    ),
}
# Not a chat template (no roles, one exchange): LLaVA's stage-1 pretraining layout, for training only.
PLAIN = ConversationTemplate(name="plain", system="", roles=("", ""), sep="\n", sep2="", style="plain")


def get_template(name: str) -> ConversationTemplate:
    """The template called ``name``; a typo fails here rather than silently picking a default."""
    if name == PLAIN.name:
        return PLAIN
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(
            f"unknown conversation template {name!r}; expected one of {sorted(TEMPLATES)} "
            f"(or {PLAIN.name!r}, the stage-1 pretraining layout)"
        ) from None
