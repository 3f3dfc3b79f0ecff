"""What the language model is asked, per task, and how its replies are read.

Following the Osprey generator (paper §3, official ``data_generation``): the model never sees the
image; it gets a text context (captions, every object as ``category: [x1, y1, x2, y2]`` with boxes in
[0, 1], then the special regions with their referring expressions), a system message saying what
to write, and one worked example (context, reply) before the real context. Three tasks:

- ``description``: one detailed description per region, ``<regionK>: text`` paragraphs;
- ``conversation``: ``Question k:`` / ``Answer k:`` pairs about the regions, complex reasoning
  included, every region named as ``<regionK>`` at least once;
- ``short_form``: the same layout, every answer a single word or short phrase.

The wording of the system messages and the worked examples is ours; the region block's sentences
("Specially, there are N special regions: ...", "For <regin{i}>(category: [box]):", the typo kept
as the official generator sent it) follow the official prompt. Replies are read leniently in form
(``<region 1>``, ``<regin1>``, ``Region1`` all mean region 1) and strictly in content: a reply that
does not cover what was asked is rejected with the reason, never patched up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from osprey.curate.context import ImageContext, Region

TASKS: tuple[str, ...] = ("description", "conversation", "short_form")
OUTPUT_FILES = {
    "description": "osprey_detail_description.json",
    "conversation": "osprey_conversation.json",
    "short_form": "osprey_short_form.json",
}
PARSER_NAMES = {
    "description": "osprey_detail_description",
    "conversation": "osprey_conversation",
    "short_form": "osprey_short_form",
}
SHORT_ANSWER_MAX_WORDS = 6

# Problem codes of rejected replies (reports count per code).
REPLY_FORMAT = "reply_format"  # the reply is not in the layout asked for
REPLY_REGIONS = "reply_regions"  # regions missing, out of range or out of order
ANSWER_LENGTH = "answer_length"  # a short-form answer that is not short


class ReplyError(ValueError):
    """A reply that cannot become a record; ``problem`` is one of the codes above."""

    def __init__(self, problem: str, reason: str) -> None:
        super().__init__(f"{problem}: {reason}")
        self.problem = problem
        self.reason = reason


# --------------------------------------------------------------------------------------------------
# Context


def region_list_sentence(n: int) -> str:
    """``"Specially, there are 3 special regions: <region1>, <region2> and <region3>."`` (official)."""
    tags = [f"<region{k}>" for k in range(1, n + 1)]
    if n == 1:
        return "Specially, there is 1 special region: <region1>."
    return f"Specially, there are {n} special regions: {', '.join(tags[:-1])} and {tags[-1]}."


def context_text(context: ImageContext) -> str:
    """The text the model gets in place of the image."""
    lines = ["Captions of the image:"]
    lines += [f"- {c}" for c in context.captions] or ["- (none)"]
    lines.append("Objects in the image (category: [x1, y1, x2, y2], coordinates normalised to [0, 1]):")
    lines += [f"{name}: {_box(context.normalized_box(box))}" for name, box in context.objects]
    lines.append(region_list_sentence(len(context.regions)))
    for k, region in enumerate(context.regions, start=1):
        lines.append(f"For <regin{k}>({region.category}: {_box(context.normalized_box(region.bbox))}):")
        lines += [f"- {e}" for e in region.expressions] or ["- (no expression)"]
    return "\n".join(lines)


def _box(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in box) + "]"


# --------------------------------------------------------------------------------------------------
# System messages and worked examples

_COMMON = (
    "You are an AI visual assistant looking at a single image. You do not see the image itself: you "
    "are given its captions, the category and bounding box of every object in it (coordinates "
    "[x1, y1, x2, y2] normalised to [0, 1], x to the right, y downward), and a few special regions, "
    "each with referring expressions written by people who saw the image. Speak as if you see the "
    "image: never mention captions, boxes, coordinates or expressions, and never give numbers from "
    "the boxes. Refer to a special region only as <region1>, <region2>, ... exactly as written. "
    "Only state what the given information supports."
)

SYSTEM_MESSAGES = {
    "description": _COMMON
    + " Task: write a detailed description of every special region, one paragraph per region, in "
    "order. Cover the object's category, appearance (colour, shape, material, clothing, pose), what it "
    "is doing, and where it is relative to other objects and within the image. Start each paragraph "
    "with its tag and a colon, like '<region1>: ...', and separate the paragraphs by one blank line. "
    "Write nothing else.",
    "conversation": _COMMON
    + " Task: write a conversation between a person asking about the special regions and you "
    "answering. Ask about categories, attributes, actions, positions, relations between regions, and "
    "at least one question that needs reasoning (why, what might happen, what is it used for). "
    "Mention every special region at least once, as its tag. Answers are complete, confident "
    "sentences. Write it as 'Question 1: ...' then 'Answer 1: ...', 'Question 2: ...', "
    "'Answer 2: ...', one per line, and nothing else.",
    "short_form": _COMMON
    + " Task: write short questions about the special regions, each answered by a single word or "
    "a short phrase (at most a few words, no sentence, no final period): category, colour, material, "
    "count, position, action, yes/no. Ask about every special region at least once, naming it by its "
    "tag. Write 'Question 1: ...' then 'Answer 1: ...', 'Question 2: ...', 'Answer 2: ...', one per "
    "line, and nothing else.",
}


def _example_context() -> ImageContext:
    """The worked example's context (a made-up image; its reply is in EXAMPLE_REPLIES)."""
    return ImageContext(
        image_id=0,
        file_name="example.jpg",
        height=100,
        width=100,
        objects=[("person", [10, 20, 30, 70]), ("dog", [55, 60, 30, 25]), ("frisbee", [70, 30, 10, 5])],
        regions=[
            Region([10, 20, 30, 70], None, "person", ["man in a blue shirt", "guy on the left throwing"]),
            Region([55, 60, 30, 25], None, "dog", ["brown dog running", "dog at bottom right"]),
        ],
        captions=[
            "A man throws a frisbee to his dog in a park.",
            "A dog runs after a flying disc on the grass.",
        ],
    )


EXAMPLE_REPLIES = {
    "description": (
        "<region1>: A man in a blue short-sleeved shirt and dark trousers stands on the left side of the "
        "picture. His right arm is stretched forward as he has just thrown a frisbee, which flies toward "
        "the upper right. He is looking at his dog, and his stance is relaxed and playful.\n\n"
        "<region2>: A brown, medium-sized dog runs across the grass in the lower right part of the image. "
        "Its legs are in full stride and its head is raised toward the frisbee in the air, ready to catch "
        "it. It is to the right of the man who threw the disc."
    ),
    "conversation": (
        "Question 1: What is <region1> doing?\n"
        "Answer 1: The man is throwing a frisbee; his arm is still stretched forward after the throw.\n"
        "Question 2: Where is <region2> relative to <region1>?\n"
        "Answer 2: The dog is to the right of the man and lower in the picture, running away from him.\n"
        "Question 3: Why is <region2> running?\n"
        "Answer 3: It is chasing the frisbee the man just threw, most likely to catch it and bring it back, "
        "which suggests the two are playing fetch together in the park."
    ),
    "short_form": (
        "Question 1: What is <region1> throwing?\nAnswer 1: A frisbee\n"
        "Question 2: What color is the shirt of <region1>?\nAnswer 2: Blue\n"
        "Question 3: What animal is <region2>?\nAnswer 3: Dog\n"
        "Question 4: Is <region2> running?\nAnswer 4: Yes"
    ),
}


def build_messages(task: str, context: ImageContext) -> list[dict[str, str]]:
    """System message, the worked example (context, reply), then this image's context."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return [
        {"role": "system", "content": SYSTEM_MESSAGES[task]},
        {"role": "user", "content": context_text(_example_context())},
        {"role": "assistant", "content": EXAMPLE_REPLIES[task]},
        {"role": "user", "content": context_text(context)},
    ]


# --------------------------------------------------------------------------------------------------
# Reading replies

_LOOSE_TAG_RE = re.compile(r"<\s*regi?o?n\s*(\d+)\s*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<region(\d+)>")
_DESCRIPTION_HEAD_RE = re.compile(r"^\s*(?:\*\*)?<region(\d+)>(?:\*\*)?\s*:\s*", re.MULTILINE)
_QA_HEAD_RE = re.compile(r"^\s*(?:\*\*)?(Question|Answer)\s*(\d+)\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.MULTILINE)


def normalize_tags(text: str) -> str:
    """``<region 1>``, ``<Regin1>`` ... -> ``<region1>``."""
    return _LOOSE_TAG_RE.sub(lambda m: f"<region{int(m.group(1))}>", text)


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


def parse_description_reply(reply: str, num_regions: int) -> list[str]:
    """``["<region1>: text", ...]``, one per region in order; the body keeps no region tag
    (a ``<regionK>`` inside is written ``regionK``, as our parser would read it)."""
    text = normalize_tags(reply)
    heads = list(_DESCRIPTION_HEAD_RE.finditer(text))
    if not heads:
        raise ReplyError(REPLY_FORMAT, f"no '<regionK>: ...' paragraph in {_short(reply)}")
    found = [int(m.group(1)) for m in heads]
    if found != list(range(1, num_regions + 1)):
        raise ReplyError(
            REPLY_REGIONS,
            f"paragraphs for regions {found}; expected one per region 1..{num_regions} in order",
        )
    out = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = " ".join(text[head.end() : end].split())
        body = _TAG_RE.sub(lambda m: f"region{m.group(1)}", body)
        if not body:
            raise ReplyError(REPLY_FORMAT, f"paragraph of <region{found[i]}> is empty")
        out.append(f"<region{found[i]}>: {body}")
    return out


def parse_qa_reply(reply: str, num_regions: int, *, max_answer_words: int | None = None) -> list[QAPair]:
    """``Question k:`` / ``Answer k:`` pairs, numbered 1, 2, ... in order, mentioning every region."""
    text = normalize_tags(reply)
    heads = list(_QA_HEAD_RE.finditer(text))
    if not heads:
        raise ReplyError(REPLY_FORMAT, f"no 'Question 1:' / 'Answer 1:' lines in {_short(reply)}")
    parts = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        parts.append((head.group(1).capitalize(), int(head.group(2)), text[head.end() : end].strip()))
    if len(parts) % 2:
        raise ReplyError(REPLY_FORMAT, f"{len(parts)} Question/Answer entries; expected pairs")
    pairs = []
    for n, ((kind_q, k_q, q), (kind_a, k_a, a)) in enumerate(zip(parts[0::2], parts[1::2], strict=True), 1):
        if (kind_q, k_q, kind_a, k_a) != ("Question", n, "Answer", n):
            raise ReplyError(
                REPLY_FORMAT,
                f"entry pair {n} is '{kind_q} {k_q}' / '{kind_a} {k_a}'; expected 'Question {n}' / 'Answer {n}'",
            )
        if not q or not a:
            raise ReplyError(REPLY_FORMAT, f"Question/Answer {n} is empty")
        if max_answer_words is not None and len(a.split()) > max_answer_words:
            raise ReplyError(
                ANSWER_LENGTH,
                f"answer {n} {_short(a)} has {len(a.split())} words; expected at most {max_answer_words}",
            )
        pairs.append(QAPair(q, a))
    mentioned = {int(k) for p in pairs for k in _TAG_RE.findall(p.question + p.answer)}
    if bad := sorted(k for k in mentioned if not 1 <= k <= num_regions):
        raise ReplyError(REPLY_REGIONS, f"mentions region(s) {bad}; expected 1..{num_regions}")
    if missing := sorted(set(range(1, num_regions + 1)) - mentioned):
        raise ReplyError(
            REPLY_REGIONS, f"region(s) {missing} never mentioned; expected every region 1..{num_regions}"
        )
    return pairs


def _short(text: str, limit: int = 80) -> str:
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
