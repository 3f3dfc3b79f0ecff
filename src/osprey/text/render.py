"""Turn a conversation into model ids and labels, with the official Osprey token layout.

Placeholders in user text:
    ``<image>``    the image; expands to ``num_image_tokens`` image slot ids.
    ``<regionK>``  region K (1-based); expands to ``[mask slot, pos slot]``, the two positions the
                   model fills with region K's mask and position features.
Everything else is text, so a user typing ``<mask>`` or ``</s>`` gets ordinary text ids.
Official prompt strings (``<image>`` and ``<mask><pos>``) go through :func:`parse_official`
(``official_placeholders=True``): there the i-th ``<mask><pos>`` is region i.

Why the layout is built the way it is: the official fast tokenizer split the prompt at every
special token and at ``<image>`` and tokenized each text run on its own, so we do the same, one
run at a time. Labels are appended together with their ids (never recovered by length arithmetic
afterwards, which in the official code silently masked whole samples): the prompt up to
``"ASSISTANT:"`` is one run, the answer another, encoded with
:meth:`TextTokenizer.encode_after_space` so the two pieces equal the joint run's ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from osprey.text.conversation import ConversationTemplate, Turn
from osprey.text.tokenizer import IMAGE_TOKEN_INDEX, SlotIds, TextTokenizer

IGNORE_INDEX = -100  # label of every position the loss skips (official IGNORE_INDEX)
IMAGE_PLACEHOLDER = "<image>"
ANSWER_SPACE = " "  # the official layout writes an answer as role + ": " + message

_USER_PLACEHOLDERS = re.compile(r"<image>|<region(\d+)>")
_OFFICIAL_PLACEHOLDERS = re.compile(r"<image>|<mask><pos>|<mask>|<pos>")


@dataclass(frozen=True)
class ImageSlot:
    """Where the image's tokens go."""


@dataclass(frozen=True)
class RegionSlot:
    """Where region ``index`` (0-based) goes: one mask position and one position-token position."""

    index: int


Segment = str | ImageSlot | RegionSlot


@dataclass(frozen=True)
class RenderedConversation:
    """Model inputs for one conversation.

    ``labels`` is ``IGNORE_INDEX`` except on assistant answer tokens and the eos ending each
    answer. ``region_order[j]`` is the region whose features fill the j-th mask slot.
    """

    input_ids: list[int]
    labels: list[int]
    region_order: list[int]


# --------------------------------------------------------------------------------------- parsing


def parse_segments(text: str, *, allow_image: bool = True, num_regions: int | None = None) -> list[Segment]:
    """Split user text at ``<regionK>`` (and ``<image>`` when allowed); all else stays text.

    With ``num_regions`` given, a ``<regionK>`` beyond it is a ValueError.
    """
    segments: list[Segment] = []
    cursor = 0
    for match in _USER_PLACEHOLDERS.finditer(text):
        is_image = match.group(1) is None
        if is_image and not allow_image:
            continue  # stays part of the surrounding text
        _append_text(segments, text[cursor : match.start()])
        segments.append(ImageSlot() if is_image else _region_slot(int(match.group(1)), num_regions))
        cursor = match.end()
    _append_text(segments, text[cursor:])
    return segments


def parse_official(
    text: str, *, first_region: int = 0, allow_image: bool = True, num_regions: int | None = None
) -> list[Segment]:
    """Split an official prompt string at ``<image>`` and ``<mask><pos>``.

    The official data numbers regions by order: the i-th ``<mask><pos>`` of a conversation is
    region i. ``first_region`` is how many earlier turns of the same conversation already used.
    A ``<mask>`` without ``<pos>`` right after it, or a ``<pos>`` alone, is a ValueError (the
    official splice assumed the pair and would misplace features).
    """
    segments: list[Segment] = []
    cursor = 0
    region = first_region
    for match in _OFFICIAL_PLACEHOLDERS.finditer(text):
        token = match.group(0)
        if token == IMAGE_PLACEHOLDER and not allow_image:
            continue
        if token in ("<mask>", "<pos>"):
            raise ValueError(_unpaired_message(token, match.start(), text))
        _append_text(segments, text[cursor : match.start()])
        if token == IMAGE_PLACEHOLDER:
            segments.append(ImageSlot())
        else:
            written = f"'<mask><pos>' number {region + 1} of the conversation"
            segments.append(_region_slot(region + 1, num_regions, written))
            region += 1
        cursor = match.end()
    _append_text(segments, text[cursor:])
    return segments


def _append_text(segments: list[Segment], text: str) -> None:
    if not text:
        return
    if segments and isinstance(segments[-1], str):
        segments[-1] += text
    else:
        segments.append(text)


def _region_slot(number: int, num_regions: int | None, written: str | None = None) -> RegionSlot:
    """``number`` is 1-based, as in ``<regionK>``; ``written`` is how the text named it."""
    written = written or f"<region{number}>"
    if number < 1:
        given = _given(num_regions)
        raise ValueError(
            f"{written} is not a region: region numbers start at 1{';' + given if given else ''}"
        )
    if num_regions is not None and number > num_regions:
        raise ValueError(f"{written} refers to region {number}, but{_given(num_regions)}")
    return RegionSlot(number - 1)


def _given(num_regions: int | None) -> str:
    if num_regions is None:
        return ""
    valid = "none" if num_regions == 0 else f"<region1>..<region{num_regions}>"
    return f" only {num_regions} region(s) were given (valid: {valid})"


def _unpaired_message(token: str, position: int, text: str) -> str:
    context = text[max(0, position - 20) : position + 20]
    problem = "is not followed by '<pos>'" if token == "<mask>" else "has no '<mask>' right before it"
    return (
        f"{token!r} at character {position} {problem} (near {context!r}); "
        "official prompts write each region as '<mask><pos>'"
    )


# ---------------------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Part:
    """One piece of the official layout. ``user`` text may hold placeholders; ``answer`` is
    supervised and follows ``"ASSISTANT:"`` after one space; ``eos`` ends an answer; ``plain_answer``
    is supervised and encoded as a chunk of its own (the ``plain`` template)."""

    kind: Literal["template", "user", "answer", "eos", "plain_answer"]
    text: str = ""


def _layout(
    turns: Sequence[Turn], template: ConversationTemplate, add_generation_prompt: bool
) -> list[_Part]:
    """``system + " " + "USER: " + q1 + " " + "ASSISTANT: " + a1 + "</s>" + "USER: " + q2 ...``,
    with an open final turn written ``"ASSISTANT:"`` (official ``SeparatorStyle.TWO``)."""
    _check_turns(turns, add_generation_prompt)
    if template.style == "plain":
        if len(turns) > 2:
            raise ValueError(f"the plain template holds one exchange (an image and its caption), got {len(turns)} turns")
        parts = [_Part("user", "<image>")]
        return parts + ([_Part("plain_answer", turns[1].text + template.sep)] if len(turns) > 1 else [])
    user_role, assistant_role = template.roles
    parts = [_Part("template", template.system + template.sep)]
    for turn in turns:
        if turn.role == "user":
            parts += [
                _Part("template", f"{user_role}: "),
                _Part("user", turn.text),
                _Part("template", template.sep),
            ]
        else:
            parts += [_Part("template", f"{assistant_role}:"), _Part("answer", turn.text), _Part("eos")]
    if add_generation_prompt:
        parts.append(_Part("template", f"{assistant_role}:"))
    return parts


def _check_turns(turns: Sequence[Turn], add_generation_prompt: bool) -> None:
    """User and assistant alternate, starting with the user; the last role depends on the mode."""
    if not turns:
        raise ValueError("a conversation needs at least one turn")
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ValueError(
                f"turn {i} has role {turn.role!r}, expected {expected!r} (turns alternate, user first)"
            )
        if not turn.text:
            # The official template renders an empty message as an open turn: never what is meant.
            raise ValueError(f"turn {i} ({turn.role}) has empty text")
    last = turns[-1].role
    if add_generation_prompt and last != "user":
        raise ValueError("add_generation_prompt=True needs the last turn to be the user's, got 'assistant'")
    if not add_generation_prompt and last != "assistant":
        raise ValueError("add_generation_prompt=False needs the last turn to be the assistant's, got 'user'")


# ------------------------------------------------------------------------------------- rendering


@dataclass
class _SequenceBuilder:
    """Ids, labels and region order grow together, one piece at a time (nanochat style)."""

    tokenizer: TextTokenizer
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    region_order: list[int] = field(default_factory=list)
    _pending_text: list[str] = field(default_factory=list)

    def add(self, ids: Sequence[int], *, supervised: bool) -> None:
        self.input_ids.extend(ids)
        self.labels.extend(ids if supervised else [IGNORE_INDEX] * len(ids))

    def add_text(self, text: str) -> None:
        """Text joins the current run; the run is encoded when a special piece ends it."""
        self._pending_text.append(text)

    def end_run(self) -> None:
        self.add(self.tokenizer.encode("".join(self._pending_text)), supervised=False)
        self._pending_text.clear()


def render_conversation(
    turns: Sequence[Turn],
    *,
    template: ConversationTemplate,
    tokenizer: TextTokenizer,
    slots: SlotIds,
    num_image_tokens: int,
    num_regions: int,
    add_generation_prompt: bool,
    official_placeholders: bool = False,
    region_texts: Sequence[str] | None = None,
) -> RenderedConversation:
    """Ids, labels and region order of ``turns`` in the official layout.

    ``<image>`` is recognised in the first user turn only (where the official data puts it; later
    it is text) and at most once. Assistant text is always plain text. With
    ``official_placeholders`` user text uses ``<mask><pos>`` instead of ``<regionK>`` and must
    name exactly ``num_regions`` regions, as the official splice asserted.
    ``region_texts[k]``, when given, is written as text right after region k's two slots, every
    time region k appears (:mod:`osprey.text.geometry`; None is the official layout).
    """
    if region_texts is not None and len(region_texts) != num_regions:
        raise ValueError(f"region_texts has {len(region_texts)} entries for {num_regions} region(s)")
    if num_image_tokens < 1 or num_regions < 0:
        raise ValueError(
            f"need num_image_tokens >= 1 and num_regions >= 0, got {num_image_tokens}, {num_regions}"
        )
    builder = _SequenceBuilder(tokenizer)
    if tokenizer.bos_id is not None:
        builder.add([tokenizer.bos_id], supervised=False)
    regions_used, user_turns = 0, 0
    for part in _layout(turns, template, add_generation_prompt):
        if part.kind == "template":
            builder.add_text(part.text)
        elif part.kind == "user":
            first_turn = user_turns == 0
            segments = _parse_user(part.text, official_placeholders, regions_used, first_turn, num_regions)
            _add_user_segments(builder, segments, slots, num_image_tokens, region_texts)
            regions_used += sum(isinstance(s, RegionSlot) for s in segments)
            user_turns += 1
        elif part.kind == "answer":
            builder.end_run()  # the prompt run ends at "ASSISTANT:"
            builder.add(tokenizer.encode_after_space(part.text), supervised=True)
        elif part.kind == "plain_answer":  # a chunk after the image, as tokenizer_image_token encodes it
            builder.end_run()
            builder.add(tokenizer.encode(part.text), supervised=True)
        else:
            builder.end_run()
            builder.add([tokenizer.eos_id], supervised=True)
    builder.end_run()
    if official_placeholders and regions_used != num_regions:
        raise ValueError(
            f"the prompt has {regions_used} '<mask><pos>' but {num_regions} region(s) were given"
        )
    return RenderedConversation(builder.input_ids, builder.labels, builder.region_order)


def _parse_user(
    text: str, official: bool, regions_used: int, allow_image: bool, num_regions: int
) -> list[Segment]:
    """Placeholders of one user message; ``regions_used`` counts official regions of earlier turns."""
    if official:
        return parse_official(
            text, first_region=regions_used, allow_image=allow_image, num_regions=num_regions
        )
    return parse_segments(text, allow_image=allow_image, num_regions=num_regions)


def _add_user_segments(
    builder: _SequenceBuilder,
    segments: list[Segment],
    slots: SlotIds,
    num_image_tokens: int,
    region_texts: Sequence[str] | None = None,
) -> None:
    """Append one user message: text joins the current run, slots end it."""
    images = 0
    for segment in segments:
        if isinstance(segment, str):
            builder.add_text(segment)
            continue
        builder.end_run()
        if isinstance(segment, ImageSlot):
            images += 1
            if images > 1:
                raise ValueError(
                    f"a conversation holds one image, but the first user turn has {images} '<image>'"
                )
            builder.add([slots.image] * num_image_tokens, supervised=False)
        else:
            builder.add([slots.mask, slots.pos], supervised=False)
            builder.region_order.append(segment.index)
            if region_texts is not None:
                builder.add_text(region_texts[segment.index])


def render_prompt_text(
    turns: Sequence[Turn],
    *,
    template: ConversationTemplate,
    add_generation_prompt: bool,
    eos_text: str | None = None,
) -> str:
    """The plain prompt string (placeholders as written), for logs and golden checks.

    ``eos_text`` is how each answer's end is written; default ``template.sep2`` (``"</s>"``).
    """
    end = template.sep2 if eos_text is None else eos_text
    return "".join(_part_text(part, end) for part in _layout(turns, template, add_generation_prompt))


def _part_text(part: _Part, eos_text: str) -> str:
    if part.kind == "answer":
        return ANSWER_SPACE + part.text
    return eos_text if part.kind == "eos" else part.text


def collapse_image_slots(ids: Sequence[int], slots: SlotIds) -> list[int]:
    """Replace each run of image slot ids with one ``IMAGE_TOKEN_INDEX`` (-200), the official
    unexpanded form, so rendered ids compare with official ``input_ids``."""
    collapsed: list[int] = []
    for token_id in ids:
        if token_id != slots.image:
            collapsed.append(token_id)
        elif not collapsed or collapsed[-1] != IMAGE_TOKEN_INDEX:
            collapsed.append(IMAGE_TOKEN_INDEX)
    return collapsed
