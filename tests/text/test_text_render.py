"""Rendering conversations to ids + labels: golden parity, label exactness, placeholder safety."""

from __future__ import annotations

import json
import random
import re

import pytest
from text_helpers import GOLDEN_DIR

from osprey.text.conversation import ConversationTemplate, Turn, get_template
from osprey.text.render import (
    IGNORE_INDEX,
    ImageSlot,
    RegionSlot,
    RenderedConversation,
    collapse_image_slots,
    parse_official,
    parse_segments,
    render_conversation,
    render_prompt_text,
)
from osprey.text.tokenizer import IMAGE_TOKEN_INDEX, SlotIds, TextTokenizer

OSPREY_V1 = get_template("osprey_v1")
ASSISTANT_COLON = [319, 1799, 9047, 13566, 29901]  # "▁ASSISTANT:" in the LLaMA vocabulary


def render(
    turns: list[Turn],
    tokenizer: TextTokenizer,
    *,
    num_regions: int = 2,
    add_generation_prompt: bool = False,
    official: bool = False,
    num_image_tokens: int = 4,
    template: ConversationTemplate = OSPREY_V1,
) -> RenderedConversation:
    return render_conversation(
        turns,
        template=template,
        tokenizer=tokenizer,
        slots=SlotIds.for_tokenizer(tokenizer),
        num_image_tokens=num_image_tokens,
        num_regions=num_regions,
        add_generation_prompt=add_generation_prompt,
        official_placeholders=official,
    )


def supervised_runs(rendered: RenderedConversation) -> list[list[int]]:
    """Contiguous runs of supervised positions, checking labels equal ids there."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for token_id, label in zip(rendered.input_ids, rendered.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token_id
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


# ------------------------------------------------------------------------------ golden (set C)


@pytest.fixture(scope="module")
def golden_prompt() -> dict:
    path = GOLDEN_DIR / "osprey_tiny_llm.json"
    if not path.is_file():
        pytest.skip(f"golden data {path} not present (it lives in the shared folder beside the repo)")
    return json.loads(path.read_text())["prompt"]


def test_golden_prompt_ids(llama: TextTokenizer, golden_prompt: dict) -> None:
    turns = [Turn("user", golden_prompt["question_raw"])]
    rendered = render(turns, llama, add_generation_prompt=True, official=True, num_image_tokens=1024)
    slots = SlotIds.for_tokenizer(llama)
    collapsed = collapse_image_slots(rendered.input_ids, slots)
    assert collapsed == golden_prompt["input_ids"]
    assert len(collapsed) == 76 and collapsed.index(IMAGE_TOKEN_INDEX) == 35
    assert len(rendered.input_ids) == 1099
    rows = [i for i, t in enumerate(rendered.input_ids) if t in (slots.mask, slots.pos)]
    assert rows == [1077, 1078, 1084, 1085]
    assert [i for i, t in enumerate(rendered.input_ids) if t == slots.image] == list(range(35, 1059))
    assert rendered.region_order == [0, 1]
    assert set(rendered.labels) == {IGNORE_INDEX}


def test_golden_prompt_text(golden_prompt: dict) -> None:
    turns = [Turn("user", golden_prompt["question_raw"])]
    assert (
        render_prompt_text(turns, template=OSPREY_V1, add_generation_prompt=True) == golden_prompt["prompt"]
    )


def test_region_placeholders_give_the_same_ids_as_official_ones(llama: TextTokenizer) -> None:
    official = [Turn("user", "<image>\nWhat is <mask><pos>? And <mask><pos>?")]
    ours = [Turn("user", "<image>\nWhat is <region1>? And <region2>?")]
    a = render(official, llama, add_generation_prompt=True, official=True)
    b = render(ours, llama, add_generation_prompt=True)
    assert a == b


# ---------------------------------------------------------------------------------- layout


def test_multi_turn_prompt_text_layout() -> None:
    turns = [Turn("user", "q1"), Turn("assistant", "a1"), Turn("user", "q2"), Turn("assistant", "a2")]
    system = get_template("v1").system
    text = render_prompt_text(turns, template=get_template("v1"), add_generation_prompt=False)
    assert text == f"{system} USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT: a2</s>"
    open_text = render_prompt_text(turns[:3], template=get_template("v1"), add_generation_prompt=True)
    assert open_text == f"{system} USER: q1 ASSISTANT: a1</s>USER: q2 ASSISTANT:"


def test_two_turn_labels_are_exactly_answers_plus_eos(llama: TextTokenizer) -> None:
    answers = ["A brown dog.", "A cat sitting on\na  sofa, 2 cushions."]
    turns = [
        Turn("user", "<image>\nWhat is <region1>?"),
        Turn("assistant", answers[0]),
        Turn("user", "And <region2>?"),
        Turn("assistant", answers[1]),
    ]
    rendered = render(turns, llama, template=get_template("v1"))
    runs = supervised_runs(rendered)
    assert [llama.decode(run, skip_special=False) for run in runs] == [a + "</s>" for a in answers]
    assert rendered.input_ids[0] == llama.bos_id and rendered.labels[0] == IGNORE_INDEX
    for run in runs:  # each answer starts right after "ASSISTANT:"
        start = _find(rendered.input_ids, run)
        assert rendered.input_ids[start - len(ASSISTANT_COLON) : start] == ASSISTANT_COLON
    assert rendered.region_order == [0, 1]


def test_hf_tokenizer_renders_and_labels(tiny_hf: TextTokenizer) -> None:
    answers = ["a brown dog", "a red sofa"]
    turns = [
        Turn("user", "<image>\nWhat is <region1>?"),
        Turn("assistant", answers[0]),
        Turn("user", "And <region2>?"),
        Turn("assistant", answers[1]),
    ]
    rendered = render(turns, tiny_hf)
    slots = SlotIds.for_tokenizer(tiny_hf)
    assert rendered.input_ids.count(slots.image) == 4
    assert rendered.input_ids.count(slots.mask) == 2 and rendered.input_ids.count(slots.pos) == 2
    runs = supervised_runs(rendered)
    # no dummy prefix: the answer keeps the space that follows "ASSISTANT:"
    assert [tiny_hf.decode(run, skip_special=False) for run in runs] == [f" {a}<|im_end|>" for a in answers]
    prompt = render_prompt_text(turns, template=OSPREY_V1, add_generation_prompt=False, eos_text="<|im_end|>")
    assert prompt.endswith("ASSISTANT: a red sofa<|im_end|>")


def test_open_turn_ends_with_assistant_colon(llama: TextTokenizer) -> None:
    rendered = render([Turn("user", "hi")], llama, add_generation_prompt=True, num_regions=0)
    assert rendered.input_ids[-len(ASSISTANT_COLON) :] == ASSISTANT_COLON
    assert set(rendered.labels) == {IGNORE_INDEX}


# ------------------------------------------------------------------------------- placeholders


def test_parse_segments_only_knows_image_and_regions() -> None:
    assert parse_segments("a <region2> b <image><mask><pos>") == [
        "a ",
        RegionSlot(1),
        " b ",
        ImageSlot(),
        "<mask><pos>",
    ]
    assert parse_segments("x <image> y", allow_image=False) == ["x <image> y"]
    assert parse_segments("") == []


def test_parse_official_numbers_regions_across_turns() -> None:
    assert parse_official("<image>\nA <mask><pos>, <region1>") == [
        ImageSlot(),
        "\nA ",
        RegionSlot(0),
        ", <region1>",
    ]
    assert parse_official("<mask><pos> and <mask><pos>", first_region=2) == [
        RegionSlot(2),
        " and ",
        RegionSlot(3),
    ]


def test_typed_mask_in_user_text_is_plain_text(llama: TextTokenizer) -> None:
    turns = [Turn("user", "Is <mask> or <pos> or </s> in <region1>?"), Turn("assistant", "No <mask>.")]
    rendered = render(turns, llama, num_regions=1)
    slots = SlotIds.for_tokenizer(llama)
    assert rendered.input_ids.count(slots.mask) == 1 and rendered.input_ids.count(slots.pos) == 1
    assert rendered.input_ids.count(llama.eos_id) == 1  # only the answer's end
    assert rendered.region_order == [0]
    assert llama.decode(supervised_runs(rendered)[0], skip_special=False) == "No <mask>.</s>"


@pytest.mark.parametrize(
    ("text", "num_regions", "message"),
    [
        (
            "<region0>",
            2,
            r"<region0> is not a region: region numbers start at 1; only 2 region\(s\) were given",
        ),
        (
            "<region3>",
            2,
            r"<region3> refers to region 3, but only 2 region\(s\) were given \(valid: <region1>..<region2>\)",
        ),
        ("<region1>", 0, r"<region1> refers to region 1, but only 0 region\(s\) were given \(valid: none\)"),
    ],
)
def test_bad_region_references(llama: TextTokenizer, text: str, num_regions: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render([Turn("user", text)], llama, num_regions=num_regions, add_generation_prompt=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("What is <mask> here", r"'<mask>' at character 8 is not followed by '<pos>'"),
        ("What is <pos> here", r"'<pos>' at character 8 has no '<mask>' right before it"),
        ("<mask><pos><pos>", r"'<pos>' at character 11"),
    ],
)
def test_unpaired_official_placeholders(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_official(text)


def test_official_region_beyond_the_given_masks(llama: TextTokenizer) -> None:
    with pytest.raises(
        ValueError, match=r"'<mask><pos>' number 2 of the conversation refers to region 2, but only 1 region"
    ):
        turns = [Turn("user", "<mask><pos>"), Turn("assistant", "a"), Turn("user", "<mask><pos>")]
        render(turns, llama, num_regions=1, official=True, add_generation_prompt=True)


def test_official_region_count_must_match(llama: TextTokenizer) -> None:
    with pytest.raises(ValueError, match=r"2 '<mask><pos>' but 3 region\(s\)"):
        render(
            [Turn("user", "<mask><pos> <mask><pos>")],
            llama,
            num_regions=3,
            official=True,
            add_generation_prompt=True,
        )


def test_image_only_in_first_user_turn(llama: TextTokenizer) -> None:
    slots = SlotIds.for_tokenizer(llama)
    turns = [Turn("user", "<image>\nhi"), Turn("assistant", "hello"), Turn("user", "<image> again")]
    rendered = render(turns, llama, add_generation_prompt=True, num_regions=0)
    assert rendered.input_ids.count(slots.image) == 4  # the later "<image>" is text
    with pytest.raises(ValueError, match="one image, but the first user turn has 2"):
        render([Turn("user", "<image><image>")], llama, add_generation_prompt=True, num_regions=0)


@pytest.mark.parametrize(
    ("turns", "add_generation_prompt", "message"),
    [
        ([], True, "at least one turn"),
        ([Turn("assistant", "a")], False, "turn 0 has role 'assistant', expected 'user'"),
        ([Turn("user", "q"), Turn("user", "q")], True, "turn 1 has role 'user', expected 'assistant'"),
        ([Turn("user", "q"), Turn("assistant", "a")], True, "needs the last turn to be the user's"),
        ([Turn("user", "q")], False, "needs the last turn to be the assistant's"),
        ([Turn("user", "q"), Turn("assistant", "")], False, r"turn 1 \(assistant\) has empty text"),
    ],
)
def test_turn_order_errors(
    llama: TextTokenizer, turns: list[Turn], add_generation_prompt: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render(turns, llama, add_generation_prompt=add_generation_prompt, num_regions=0)


def test_collapse_image_slots() -> None:
    slots = SlotIds(image=-200, mask=10, pos=11)
    assert collapse_image_slots([1, -200, -200, -200, 5, 10, 11], slots) == [1, -200, 5, 10, 11]
    assert collapse_image_slots([], slots) == []


# ------------------------------------------------- separate pieces == joint run (many strings)

# Characters that stress the split: runs of spaces, newlines, tabs, digits, punctuation, accents,
# CJK and emoji (byte fallback), a zero-width joiner, and the template's own word.
ALPHABET = [*"abcdeXYZ019 .,:;?!'\"-()\n\t", "  ", "   ", "é", "ü", "中文", "😀", "\u200d", "ⅷ", "ASSISTANT"]


def random_text(rng: random.Random, max_len: int = 12) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, max_len)))


def official_fast_ids(prompt: str, tokenizer: TextTokenizer) -> list[int]:
    """What the official code produced: ``tokenizer_image_token`` splits at ``<image>``, the fast
    tokenizer splits each chunk at its special tokens and encodes every text run on its own."""
    special = {"<mask>": 32000, "<pos>": 32001, "</s>": tokenizer.eos_id}
    ids = [tokenizer.bos_id]
    for k, chunk in enumerate(prompt.split("<image>")):
        ids += [IMAGE_TOKEN_INDEX] if k else []
        for run in re.split(r"(<mask>|<pos>|</s>)", chunk):
            ids += [special[run]] if run in special else tokenizer.encode(run)
    return ids


def test_prompt_and_answer_encoded_apart_equal_the_joint_run(
    llama: TextTokenizer, tiny_hf: TextTokenizer
) -> None:
    rng = random.Random(0)
    cases = [(random_text(rng) + rng.choice(":.x\n?"), random_text(rng)) for _ in range(3000)]
    cases += [("ASSISTANT:", answer) for answer in (" a", "  a", "\na", "\ta", " ", "▁a", "a▁", "")]
    for tokenizer in (llama, tiny_hf):
        mismatches = [
            (prefix, answer)
            for prefix, answer in cases
            if tokenizer.encode(prefix) + tokenizer.encode_after_space(answer)
            != tokenizer.encode(prefix + " " + answer)
        ]
        assert mismatches == [], type(tokenizer).__name__


def test_random_conversations_match_the_official_tokenization(llama: TextTokenizer) -> None:
    rng = random.Random(1)
    for _ in range(300):
        num_turns = rng.randint(1, 3)
        turns: list[Turn] = []
        for t in range(num_turns):
            question = random_text(rng)
            if rng.random() < 0.7:
                question += rng.choice([" ", "", "\n"]) + "<mask><pos>" + rng.choice(["?", " ?", "", "."])
            turns += [
                Turn("user", ("<image>\n" if t == 0 else "") + question),
                Turn("assistant", random_text(rng)),
            ]
        open_turn = rng.random() < 0.5
        turns = turns[:-1] if open_turn else turns
        num_regions = sum(turn.text.count("<mask><pos>") for turn in turns)
        template = rng.choice([OSPREY_V1, get_template("v1")])
        rendered = render(
            turns,
            llama,
            num_regions=num_regions,
            add_generation_prompt=open_turn,
            official=True,
            template=template,
        )
        prompt = render_prompt_text(turns, template=template, add_generation_prompt=open_turn)
        expected = official_fast_ids(prompt, llama)
        assert collapse_image_slots(rendered.input_ids, SlotIds.for_tokenizer(llama)) == expected, prompt


def _find(haystack: list[int], needle: list[int]) -> int:
    for start in range(len(haystack) - len(needle) + 1):
        if haystack[start : start + len(needle)] == needle:
            return start
    raise AssertionError(f"{needle} not in sequence")
