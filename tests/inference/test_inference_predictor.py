"""RegionPredictor: query semantics, batching, prefix sharing, ablation, streaming, sampling, chat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osprey.inference.batch import BEGIN, prepare_batch
from osprey.inference.predictor import QUESTIONS, Query, RegionPredictor
from osprey.inference.regions import RegionError
from osprey.model.generation import DecodingOptions, generate
from osprey.model.osprey import RegionBatch
from osprey.text.conversation import Turn
from osprey.text.render import render_conversation

GREEDY = DecodingOptions(max_new_tokens=6)


def test_regions_give_different_answers(predictor: RegionPredictor, encoded, masks) -> None:
    # Guards the fixture: if every region got the same answer, the mapping tests below would be vacuous.
    answers = predictor.describe(encoded, masks, "short", GREEDY)
    assert len(answers) == 4 and len(set(answers)) >= 3


def test_region_index_maps_to_masks(predictor: RegionPredictor, encoded, masks) -> None:
    described = predictor.describe(encoded, masks, "short", GREEDY)
    text = QUESTIONS["short"]
    # <region1> of a query with regions (2,) is masks[2], wherever it sits in the list.
    picked = predictor.ask(encoded, masks, [Query(text, (2,)), Query(text, (0,))], GREEDY)
    assert picked == [described[2], described[0]]
    reordered = predictor.ask(encoded, masks[[3, 2]], [Query(text, (1,))], GREEDY)
    assert reordered == [described[2]]


def test_multi_region_query_fills_slots_in_text_order(predictor: RegionPredictor, encoded, masks) -> None:
    query = Query("Is <region2> bigger than <region1>?", (1, 3))  # <region2> = masks[3] comes first
    batch = predictor.prepare(encoded, masks, [query])
    model = predictor.model
    mask_tokens, pos_tokens = model.encode_regions(encoded.levels, RegionBatch([torch.from_numpy(masks).float()]))
    ids = batch.ids[0]
    torch.testing.assert_close(batch.embeds[0][ids == model.slots.mask], mask_tokens[[3, 1]])
    torch.testing.assert_close(batch.embeds[0][ids == model.slots.pos], pos_tokens[[3, 1]])
    swapped = predictor.ask(encoded, masks, [Query(query.text, (3, 1))], GREEDY)
    assert predictor.ask(encoded, masks, [query], GREEDY) != swapped


def test_prompt_is_the_official_layout(predictor: RegionPredictor, encoded, masks) -> None:
    model = predictor.model
    query = Query("What is <region1>?", (0,), history=(Turn("user", "Hi <region1>"), Turn("assistant", "A coin.")))
    batch = predictor.prepare(encoded, masks, [query])
    expected = render_conversation(
        [Turn("user", BEGIN + "Hi <region1>"), Turn("assistant", "A coin."), Turn("user", "What is <region1>?")],
        template=predictor.template, tokenizer=predictor.tokenizer, slots=model.slots,
        num_image_tokens=model.num_image_tokens, num_regions=1, add_generation_prompt=True,
    ).input_ids
    full = batch.prefix_ids.tolist() + batch.ids[0][batch.attention_mask[0] == 1].tolist()
    assert full == expected
    assert int((batch.prefix_ids == model.slots.image).sum()) == model.num_image_tokens  # image in the shared prefix


def test_history_changes_the_answer_and_chat_keeps_it(predictor: RegionPredictor, encoded, masks) -> None:
    chat = predictor.chat(encoded, masks[:2], options=GREEDY)
    first = chat.send("What is <region1>?")
    second = chat.send("And <region2>?")
    assert [t.role for t in chat.history] == ["user", "assistant", "user", "assistant"]
    history = (Turn("user", "What is <region1>?"), Turn("assistant", first))
    assert predictor.ask(encoded, masks[:2], [Query("And <region2>?", (0, 1), history)], GREEDY) == [second]
    assert predictor.ask(encoded, masks[:2], [Query("And <region2>?", (0, 1))], GREEDY) != [second]


def test_batched_equals_one_by_one_greedy(predictor: RegionPredictor, encoded, masks) -> None:
    queries = [
        Query(QUESTIONS["short"], (0,)),
        Query("<region1>?", (3,)),  # much shorter: left padding inside the batch
        Query("Compare <region1> with <region2> and say which one is on the left.", (2, 1)),
        Query(QUESTIONS["detailed"], (1,), history=(Turn("user", "Hi"), Turn("assistant", "Hello there."))),
        Query("Describe the picture.", ()),
    ]
    options = DecodingOptions(max_new_tokens=8)
    batched = predictor.ask(encoded, masks, queries, options)
    alone = [predictor.ask(encoded, masks, [q], options)[0] for q in queries]
    assert batched == alone
    assert len(set(batched)) >= 4


def test_prefix_sharing_matches_the_plain_padded_batch(predictor: RegionPredictor, encoded, masks) -> None:
    model, tokenizer = predictor.model, predictor.tokenizer
    queries = [Query(QUESTIONS["short"], (0,)), Query("<region1> and <region2>?", (1, 2))]
    checked = torch.from_numpy(masks).float()
    shared = prepare_batch(model, tokenizer, predictor.template, encoded, checked, queries)
    plain = prepare_batch(model, tokenizer, predictor.template, encoded, checked, queries, share_prefix=False)
    assert shared.prefix_embeds is not None and plain.prefix_embeds is None
    embeds, mask = shared.full()
    # Left-padding the whole prompt and padding between prefix and continuation give the same ids.
    for b in range(2):
        assert embeds[b][mask[b] == 1].shape == plain.embeds[b][plain.attention_mask[b] == 1].shape
        torch.testing.assert_close(embeds[b][mask[b] == 1], plain.embeds[b][plain.attention_mask[b] == 1])
    options = DecodingOptions(max_new_tokens=6, stop_at_eos=False)
    with_prefix = generate(model, shared.embeds, shared.attention_mask, eos_id=tokenizer.eos_id, options=options,
                           prefix_embeds=shared.prefix_embeds, keep_scores=True)
    without = generate(model, plain.embeds, plain.attention_mask, eos_id=tokenizer.eos_id, options=options,
                       keep_scores=True)
    assert with_prefix.ids == without.ids
    torch.testing.assert_close(torch.stack(with_prefix.scores), torch.stack(without.scores), atol=1e-4, rtol=1e-4)


def test_zero_regions_changes_only_the_region_slots(predictor: RegionPredictor, encoded, masks) -> None:
    queries = [Query("Is <region1> next to <region2>?", (0, 1)), Query(QUESTIONS["short"], (3,))]
    normal = predictor.prepare(encoded, masks, queries)
    zeroed = predictor.prepare(encoded, masks, queries, zero_regions=True)
    torch.testing.assert_close(zeroed.prefix_embeds, normal.prefix_embeds, rtol=0, atol=0)
    slots = normal.region_slots
    assert int(slots.sum()) == 6  # 3 regions x (<mask>, <pos>)
    assert torch.equal(zeroed.embeds[~slots], normal.embeds[~slots])
    assert bool((zeroed.embeds[slots] == 0).all())
    assert bool((normal.embeds[slots] != 0).any(-1).all())
    assert predictor.ask(encoded, masks, queries, GREEDY, zero_regions=True) != predictor.ask(encoded, masks, queries,
                                                                                               GREEDY)


def test_streamed_pieces_concatenate_to_the_answers(predictor: RegionPredictor, encoded, masks) -> None:
    queries = [Query(QUESTIONS["short"], (i,)) for i in range(4)]
    options = DecodingOptions(max_new_tokens=10)
    plain = predictor.ask(encoded, masks, queries, options)
    pieces: dict[int, list[str]] = {i: [] for i in range(4)}
    answers = predictor.ask(encoded, masks, queries, options, on_token=lambda i, piece: pieces[i].append(piece))
    assert answers == plain
    assert ["".join(pieces[i]) for i in range(4)] == plain
    assert all(len(pieces[i]) > 1 for i in range(4))  # really incremental
    streamed: dict[int, str] = {i: "" for i in range(4)}
    for index, piece in predictor.stream(encoded, masks, queries, options):
        streamed[index] += piece
    assert [streamed[i] for i in range(4)] == plain


def test_answers_carry_usage_from_the_batch_and_the_generator(predictor: RegionPredictor, encoded, masks) -> None:
    queries = [Query(QUESTIONS["short"], (0,)), Query("<region1>?", (3,)), Query("Compare <region1>, <region2>.", (2, 1))]
    options = DecodingOptions(max_new_tokens=5)
    batch = predictor.prepare(encoded, masks, queries)
    generated = generate(predictor.model, batch.embeds, batch.attention_mask, eos_id=predictor.tokenizer.eos_id,
                         options=options, prefix_embeds=batch.prefix_embeds)
    answers = predictor.ask(encoded, masks, queries, options)
    assert [a.prompt_tokens for a in answers] == batch.lengths == [predictor.prompt_length(q, masks) for q in queries]
    assert [a.completion_tokens for a in answers] == [len(ids) for ids in generated.ids]
    assert [a.finish_reason for a in answers] == ["stop" if f else "length" for f in generated.finished]
    assert answers == [predictor.tokenizer.decode(ids).strip() for ids in generated.ids]
    assert answers[0].text == answers[0] and type(answers[0].text) is str


def test_finish_reason_is_length_at_the_cap_and_stop_at_eos(predictor: RegionPredictor, encoded, masks) -> None:
    import copy

    query = Query(QUESTIONS["short"], (0,))
    capped = predictor.ask(encoded, masks, [query], DecodingOptions(max_new_tokens=4, stop_at_eos=False))[0]
    assert (capped.completion_tokens, capped.finish_reason) == (4, "length")
    batch = predictor.prepare(encoded, masks, [query])
    ids = generate(predictor.model, batch.embeds, batch.attention_mask, eos_id=-1, prefix_embeds=batch.prefix_embeds,
                   options=DecodingOptions(max_new_tokens=4, stop_at_eos=False)).ids[0]
    tokenizer = copy.copy(predictor.tokenizer)
    tokenizer.eos_id = ids[2]  # the greedy answer's third id now ends it
    answer = RegionPredictor(predictor.model, tokenizer).ask(encoded, masks, [query], DecodingOptions(max_new_tokens=4))[0]
    assert (answer.completion_tokens, answer.finish_reason) == (ids.index(ids[2]), "stop")


def test_cancel_stops_a_non_streamed_ask_without_the_streaming_path(predictor: RegionPredictor, encoded, masks,
                                                                     monkeypatch) -> None:
    import itertools

    import osprey.inference.predictor as module

    queries = [Query(QUESTIONS["short"], (i,)) for i in range(2)]
    options = DecodingOptions(max_new_tokens=8, stop_at_eos=False)
    full = predictor.ask(encoded, masks, queries, options)

    def no_streaming(*_args):
        raise AssertionError("a non-streamed ask must not detokenise token by token")

    monkeypatch.setattr(module, "TextStream", no_streaming)
    calls = itertools.count()
    cut = predictor.ask(encoded, masks, queries, options, cancel=lambda: next(calls) >= 3)  # 3 steps, then stop
    assert [a.completion_tokens for a in cut] == [3, 3] and {a.finish_reason for a in cut} == {"cancelled"}
    assert [a.prompt_tokens for a in cut] == [a.prompt_tokens for a in full]
    assert all(f.startswith(c) for c, f in zip(cut, full, strict=True))
    before = predictor.ask(encoded, masks, queries, options, cancel=lambda: True)  # not even the prefill
    assert before == ["", ""] and [a.completion_tokens for a in before] == [0, 0]
    assert predictor.describe(encoded, masks[:1], "short", options, cancel=lambda: True)[0].finish_reason == "cancelled"


def test_chat_stream_remembers_the_turn(predictor: RegionPredictor, encoded, masks) -> None:
    chat = predictor.chat(encoded, masks[:1], options=GREEDY)
    answer = "".join(chat.stream("What is <region1>?"))
    assert chat.history[-1] == Turn("assistant", answer)
    assert answer == predictor.ask(encoded, masks[:1], [Query("What is <region1>?", (0,))], GREEDY)[0]


def test_sampling_with_a_seed_is_reproducible(predictor: RegionPredictor, encoded, masks) -> None:
    queries = [Query(QUESTIONS["short"], (i,)) for i in range(2)]

    def hot(seed: int) -> DecodingOptions:
        return DecodingOptions(max_new_tokens=6, do_sample=True, temperature=1.5, seed=seed)

    first = predictor.ask(encoded, masks, queries, hot(7))
    assert predictor.ask(encoded, masks, queries, hot(7)) == first
    assert predictor.ask(encoded, masks, queries, hot(8)) != first
    official = DecodingOptions.official_sampling(seed=3, max_new_tokens=6)
    assert (official.temperature, official.top_p, official.do_sample) == (0.2, 1.0, True)
    assert predictor.ask(encoded, masks, queries, official) == predictor.ask(encoded, masks, queries, official)


def test_image_inputs_and_describe_modes(predictor: RegionPredictor, coins_path, encoded, masks) -> None:
    from PIL import Image

    expected = predictor.describe(encoded, masks[:2], "category", GREEDY)
    assert predictor.describe(coins_path, masks[:2], "category", GREEDY) == expected
    assert predictor.describe(np.asarray(Image.open(coins_path).convert("RGB")), torch.from_numpy(masks[:2]),
                              "category", GREEDY) == expected
    assert predictor.describe(encoded, masks[:2], QUESTIONS["category"], GREEDY) == expected
    assert predictor.describe(encoded, masks[:0], "short", GREEDY) == []
    assert predictor.ask(encoded, masks, [], GREEDY) == []


def test_errors_name_the_bad_value(predictor: RegionPredictor, encoded, masks) -> None:
    with pytest.raises(ValueError, match=r"mask 7.*only 4 mask\(s\)"):
        predictor.ask(encoded, masks, [Query("<region1>", (7,))])
    with pytest.raises(ValueError, match=r"<region3>.*only 2 region"):
        predictor.ask(encoded, masks, [Query("<region1> <region3>", (0, 1))])
    with pytest.raises(RegionError, match=r"\(5, 303, 385\).*\(R, 303, 384\)"):
        predictor.describe(encoded, np.ones((5, 303, 385), bool))
    empty = masks.copy()
    empty[2] = False
    with pytest.raises(RegionError, match="region 2 is empty"):
        predictor.describe(encoded, empty)
    small = RegionPredictor(predictor.model, predictor.tokenizer, max_regions=3)
    with pytest.raises(RegionError, match="4 regions given; at most 3"):
        small.describe(encoded, masks)
    with pytest.raises(ValueError, match="neither a mode"):
        predictor.describe(encoded, masks, "what is this?")
    with pytest.raises(TypeError, match=r"queries\[0\] is a str"):
        predictor.ask(encoded, masks, ["<region1>"])
    with pytest.raises(ValueError, match="mask indices"):
        Query("<region1>", (-1,))
    with pytest.raises(ValueError, match="non-empty"):
        Query("  ", ())
    assert Query("x", [1, 2]).regions == (1, 2)  # lists from JSON become tuples


def test_geometry_region_text_in_the_prompt(predictor: RegionPredictor, encoded, masks) -> None:
    """A model with ``region_text="geometry"`` reads each region's centroid and area after its slots,
    in the batch and in ``prompt_length`` alike; the official layout has no such text."""
    from osprey.text.geometry import region_geometry_text

    model = predictor.model
    query = Query("Is <region1> left of <region2>?", (2, 0))
    plain = predictor.prepare(encoded, masks, [query])
    plain_length = predictor.prompt_length(query, masks)
    original = model.config
    model.config = original.replace(region_text="geometry")
    try:
        batch = predictor.prepare(encoded, masks, [query])
        length = predictor.prompt_length(query, masks)
    finally:
        model.config = original
    full = batch.prefix_ids.tolist() + batch.ids[0][batch.attention_mask[0] == 1].tolist()
    assert length == len(full) > plain_length == len(plain.prefix_ids) + int(plain.attention_mask[0].sum())
    pos_at = [i for i, t in enumerate(full) if t == model.slots.pos]
    texts = [predictor.tokenizer.decode(full[p + 1 : p + 40]) for p in pos_at]
    assert texts[0].startswith(region_geometry_text(masks[2])) and texts[1].startswith(region_geometry_text(masks[0]))
