"""Question wordings of the synthetic world, one tuple of paraphrases per question type.

``{0}``, ``{1}``, ... stand for the question's regions, always first mentioned in that order (a model
that binds the i-th mention to the i-th mask, as the official loaders do, sees them in order); they become ``<region1>``, ``<region2>`` (numbered
by the record's annotation list) when a record is written, exactly like the official Osprey-724K text.
Other fields (``{category}``, ``{part}``) are filled first with ``fill``.
"""

from __future__ import annotations

__all__ = [
    "CATEGORY_NAMING_QUESTION",
    "CONVERSATION",
    "DESCRIPTION_QUESTION",
    "PART_LEVEL",
    "POSITIVE_NEGATIVE",
    "SHORT_FORM",
    "a_or_an",
    "fill",
    "join_and",
    "plural",
]

SHORT_FORM: dict[str, tuple[str, ...]] = {
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

PART_LEVEL: dict[str, tuple[str, ...]] = {
    "part_name": ("What part of the {category} is {0}?", "Which part of the {category} does {0} show?"),
    "part_object": ("Which object is {0} a part of?", "{0} is part of what kind of object?"),
    "part_colour": ("What colour is {0}?", "What is the colour of the part in {0}?"),
    "part_texture": ("What pattern does {0} have?", "Is the part in {0} solid, striped or dotted?"),
}

POSITIVE_NEGATIVE: tuple[str, ...] = ("Is {0} {article} {category}?", "Does {0} show {article} {category}?")

CONVERSATION: dict[str, tuple[str, ...]] = {
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
