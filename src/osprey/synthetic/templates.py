"""Question wordings of the synthetic world, one tuple of paraphrases per question type.

Three sets, kept apart (``tests/synthetic/test_wording_sets.py`` checks it):

- the *core* wordings (``*_CORE``): what the bundled osprey-small was trained on; the held-out test
  split asks them, so the standard benchmark keeps measuring the skills, not the wording;
- the *training* wordings (``SHORT_FORM``, ``PART_LEVEL``, ``POSITIVE_NEGATIVE``, ``CONVERSATION``):
  the core ones plus paraphrases; training scenes draw from all of them (the paraphrases take effect
  at the next training run: the bundled model has not seen them);
- the *held-out* wordings (``HELDOUT``): asked only by the benchmark's held-out-wording set
  (``osprey.eval.heldout_wording``), never written to a training file; they include yes/no forms of
  the two-region relations in both orders, which training never asks.

``{0}``, ``{1}``, ... stand for the question's regions, always first mentioned in that order (a model
that binds the i-th mention to the i-th mask, as the official loaders do, sees them in order); they become ``<region1>``, ``<region2>`` (numbered
by the record's annotation list) when a record is written, exactly like the official Osprey-724K text.
Other fields (``{category}``, ``{part}``) are filled first with ``fill``.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "CATEGORY_NAMING_QUESTION",
    "CONVERSATION",
    "CONVERSATION_CORE",
    "DESCRIPTION_QUESTION",
    "HELDOUT",
    "PART_LEVEL",
    "PART_LEVEL_CORE",
    "POSITIVE_NEGATIVE",
    "POSITIVE_NEGATIVE_CORE",
    "SHORT_FORM",
    "SHORT_FORM_CORE",
    "Wordings",
    "a_or_an",
    "fill",
    "join_and",
    "plural",
    "training_templates",
    "wordings",
]

SHORT_FORM_CORE: dict[str, tuple[str, ...]] = {
    "category": (
        "What is the category of {0}?",
        "What kind of object is {0}?",
        "What object is shown in {0}?",
    ),
    "colour": ("What colour is {0}?", "What is the colour of {0}?", "Which colour does {0} have?"),
    "texture": (
        "What pattern does {0} have?",
        "Is {0} solid, striped or dotted?",
        "What is the texture of {0}?",
    ),
    "size": ("How big is {0}?", "Is {0} small, medium or large?", "What size is the object in {0}?"),
    "position": ("Where in the image is {0}?", "In which part of the picture is {0}?"),
    "relation_horizontal": ("Is {0} to the left or to the right of {1}?", "Is {0} left or right of {1}?"),
    "relation_vertical": ("Is {0} above or below {1}?", "Is {0} located above or below {1}?"),
    "relation_size": (
        "Is {0} larger or smaller than {1}?",
        "Is {0} bigger or smaller than {1}? Answer larger or smaller.",
    ),
}

# The evaluation prompt of the official LVIS/PACO referring-classification benchmark.
CATEGORY_NAMING_QUESTION = "What is the category of {0}? Using only one word or phrase."

# Detailed descriptions are stored as ``"<regionK>: text"``; the official loader asks one of 30 such
# questions at training time. This one (the official demo's) is what the benchmark file carries.
DESCRIPTION_QUESTION = "Can you give me a detailed description of {0}?"

PART_LEVEL_CORE: dict[str, tuple[str, ...]] = {
    "part_name": ("What part of the {category} is {0}?", "Which part of the {category} does {0} show?"),
    "part_object": ("Which object is {0} a part of?", "{0} is part of what kind of object?"),
    "part_colour": ("What colour is {0}?", "What is the colour of the part in {0}?"),
    "part_texture": ("What pattern does {0} have?", "Is the part in {0} solid, striped or dotted?"),
}

POSITIVE_NEGATIVE_CORE: tuple[str, ...] = ("Is {0} {article} {category}?", "Does {0} show {article} {category}?")

CONVERSATION_CORE: dict[str, tuple[str, ...]] = {
    "identify_first": ("What is in {0}?", "Can you tell me what {0} shows?", "What do you see in {0}?"),
    "identify_next": ("And what is in {1}?", "What about {1}?"),
    "same_colour": ("Do {0} and {1} have the same colour?", "Are {0} and {1} the same colour?"),
    "same_category": (
        "Are {0} and {1} the same kind of object?",
        "Do {0} and {1} show the same kind of thing?",
    ),
    "further_left": ("Which one is further to the left, {0} or {1}?",),
    "higher": ("Which one is higher up in the image, {0} or {1}?",),
    "larger": ("Which one looks larger, {0} or {1}?",),
    "parts": ("Which parts of {0} can you see?", "What parts does the object in {0} have?"),
    "accent": ("What colour is the {part} of {0}?",),
    "occlusion": ("Is anything covering {2}?", "Is the object in {2} fully visible?"),
}


# ------------------------------------------------------------------------- training paraphrases
# More ways to ask each training question (same answers), so a model learns the skill rather than
# the sentence. Regions are mentioned in slot order ({0} before {1}), as in the core wordings.

_SHORT_FORM_MORE: dict[str, tuple[str, ...]] = {
    "category": (
        "What is {0}?",
        "Which category does {0} belong to?",
        "What type of object is {0}?",
        "Identify the object in {0}.",
        "What thing is shown in {0}?",
    ),
    "colour": (
        "What color is {0}?",
        "What is the color of {0}?",
        "In what colour is {0} drawn?",
        "What colour does the object in {0} have?",
    ),
    "texture": (
        "Is {0} plain, striped or dotted? Answer solid, striped or dotted.",
        "Which pattern covers {0}?",
        "What surface pattern does {0} show?",
        "Does {0} have stripes, dots or no pattern? Answer solid, striped or dotted.",
    ),
    "size": (
        "What is the size of {0}?",
        "How large is {0}?",
        "Is the object in {0} small, medium or large?",
        "What size class is {0}?",
    ),
    "position": (
        "Where is {0}?",
        "Where is {0} in the image?",
        "In which area of the image is {0}?",
        "Where can {0} be found in the picture?",
    ),
    "relation_horizontal": (
        "Is {0} on the left or on the right of {1}?",
        "Is {0}, compared with {1}, to the left or to the right?",
        "Does {0} lie left or right of {1}?",
    ),
    "relation_vertical": (
        "Is {0} higher or lower than {1}? Answer above or below.",
        "Is {0}, compared with {1}, above or below?",
        "Is {0} over or under {1}? Answer above or below.",
    ),
    "relation_size": (
        "Is {0}, compared with {1}, larger or smaller?",
        "Does {0} look larger or smaller than {1}?",
        "Is the area of {0} larger or smaller than that of {1}?",
    ),
}
_PART_LEVEL_MORE: dict[str, tuple[str, ...]] = {
    "part_name": (
        "Which part of the {category} is shown in {0}?",
        "What part of the {category} does {0} cover?",
        "Which part of the {category} can be seen in {0}?",
    ),
    "part_object": ("Which object does {0} belong to?", "What object is {0} a part of?"),
    "part_colour": ("What color is {0}?", "Which colour does the part in {0} have?"),
    "part_texture": ("Which pattern does the part in {0} have?", "Is {0} solid, striped or dotted?"),
}
_POSITIVE_NEGATIVE_MORE: tuple[str, ...] = (
    "Is the object in {0} {article} {category}?",
    "Is {0} showing {article} {category}?",
    "Does the object in {0} look like {article} {category}?",
    "Does {0} contain {article} {category}?",
)
_CONVERSATION_MORE: dict[str, tuple[str, ...]] = {
    "identify_first": ("What does {0} show?", "What can you see in {0}?"),
    "identify_next": ("And {1}?", "What is in {1}, then?"),
    "same_colour": ("Is {0} the same colour as {1}?",),
    "same_category": ("Is {0} the same kind of object as {1}?",),
    "further_left": ("Of {0} and {1}, which is further left?",),
    "higher": ("Of {0} and {1}, which one is higher?",),
    "larger": ("Of {0} and {1}, which one is bigger?",),
    "parts": ("What parts of {0} are visible?",),
    "accent": ("Which colour does the {part} of {0} have?",),
}


def _extend(core: dict[str, tuple[str, ...]], more: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {kind: core[kind] + more.get(kind, ()) for kind in core}


SHORT_FORM = _extend(SHORT_FORM_CORE, _SHORT_FORM_MORE)
PART_LEVEL = _extend(PART_LEVEL_CORE, _PART_LEVEL_MORE)
POSITIVE_NEGATIVE = POSITIVE_NEGATIVE_CORE + _POSITIVE_NEGATIVE_MORE
CONVERSATION = _extend(CONVERSATION_CORE, _CONVERSATION_MORE)


class Wordings(NamedTuple):
    short_form: dict[str, tuple[str, ...]]
    part_level: dict[str, tuple[str, ...]]
    positive_negative: tuple[str, ...]
    conversation: dict[str, tuple[str, ...]]


def wordings(*, training: bool) -> Wordings:
    """The training wordings (core + paraphrases) or the core ones (what the test split asks)."""
    if training:
        return Wordings(SHORT_FORM, PART_LEVEL, POSITIVE_NEGATIVE, CONVERSATION)
    return Wordings(SHORT_FORM_CORE, PART_LEVEL_CORE, POSITIVE_NEGATIVE_CORE, CONVERSATION_CORE)


def training_templates() -> list[str]:
    """Every question wording a training file can hold (region slots {0}, fields {category}, ...)."""
    w = wordings(training=True)
    tables = (w.short_form, w.part_level, w.conversation)
    return [t for table in tables for ts in table.values() for t in ts] + [
        *w.positive_negative, CATEGORY_NAMING_QUESTION, DESCRIPTION_QUESTION]


# ------------------------------------------------------------------------------- held-out wordings
# Asked by the benchmark only (eval/heldout_wording.py), scored separately; never in a training file.
# Yes/no relation forms name the relation of {0} to {1}; the benchmark asks them in both orders.

HELDOUT: dict[str, tuple[str, ...]] = {
    "category": ("Name the object shown in {0}.", "Tell me what sort of thing {0} is."),
    "colour": ("Tell me the colour of {0}.", "{0} is painted in which colour?"),
    "texture": ("Which texture does {0} show: solid, striped or dotted?", "Tell me the surface pattern of {0}."),
    "size": ("Which size class does {0} belong to?", "Would you call {0} small, medium or large?"),
    "position": ("Which area of the image contains {0}?", "Tell me where {0} sits in the picture."),
    "part_name": ("Name the part of the {category} that {0} covers.", "{0} marks which part of the {category}?"),
    "part_colour": ("Tell me the colour of the part in {0}.",),
    "pos_neg": ("Is there {article} {category} in {0}?", "Would you say {0} is {article} {category}?"),
    "left_of": ("Is {0} to the left of {1}?",),
    "right_of": ("Is {0} to the right of {1}?",),
    "above": ("Is {0} above {1}?",),
    "below": ("Is {0} below {1}?",),
    "larger_than": ("Is {0} larger than {1}?",),
    "smaller_than": ("Is {0} smaller than {1}?",),
}


def fill(template: str, **fields: str) -> str:
    """Fill the named fields of a template and keep the ``{0}``-style region slots for later."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


def join_and(words: list[str]) -> str:
    """Join words as "a", "a and b" or "a, b and c"."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def a_or_an(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def plural(word: str) -> str:
    return word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s")
