"""Decoding: per-row EOS in a batch, fixed-length runs, option checks, left padding."""

from __future__ import annotations

import pytest
import torch

from osprey.inference.predictor import QUESTIONS, Query, RegionPredictor
from osprey.model.generation import DecodingOptions, decode_steps, generate


def _batch(predictor: RegionPredictor, encoded, masks):
    queries = [Query(QUESTIONS["short"], (i,)) for i in range(4)]
    return predictor.prepare(encoded, masks, queries)


def test_each_row_stops_at_its_own_eos(predictor: RegionPredictor, encoded, masks) -> None:
    batch = _batch(predictor, encoded, masks)
    model = predictor.model
    free = generate(model, batch.embeds, batch.attention_mask, eos_id=-1, prefix_embeds=batch.prefix_embeds,
                    options=DecodingOptions(max_new_tokens=8))
    assert all(len(ids) == 8 for ids in free.ids) and not any(free.finished)
    # Pretend row 1's third token is EOS: row 1 stops there, rows that never produce it run on unchanged.
    eos = free.ids[1][2]
    stopped = generate(model, batch.embeds, batch.attention_mask, eos_id=eos, prefix_embeds=batch.prefix_embeds,
                       options=DecodingOptions(max_new_tokens=8))
    for row, ids in enumerate(free.ids):
        if eos in ids:
            cut = ids.index(eos)
            assert stopped.ids[row] == ids[:cut] and stopped.finished[row]
        else:
            assert stopped.ids[row] == ids and not stopped.finished[row]
    assert stopped.ids[1] == free.ids[1][:2]
    assert any(eos not in ids for ids in free.ids)  # at least one row really ran past the others' EOS
    fixed = generate(model, batch.embeds, batch.attention_mask, eos_id=eos, prefix_embeds=batch.prefix_embeds,
                     options=DecodingOptions(max_new_tokens=8, stop_at_eos=False))
    assert fixed.ids == free.ids


def test_streamed_token_ids_match_the_result(predictor: RegionPredictor, encoded, masks) -> None:
    batch = _batch(predictor, encoded, masks)
    seen: dict[int, list[int]] = {}
    result = generate(predictor.model, batch.embeds, batch.attention_mask, eos_id=predictor.tokenizer.eos_id,
                      prefix_embeds=batch.prefix_embeds, options=DecodingOptions(max_new_tokens=5),
                      on_token=lambda row, token: seen.setdefault(row, []).append(token))
    assert [seen.get(row, []) for row in range(4)] == result.ids


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        DecodingOptions(max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DecodingOptions(do_sample=True, temperature=0.0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 1.5"):
        DecodingOptions(top_p=1.5)
    assert DecodingOptions().do_sample is False  # greedy by default


def test_right_padding_is_rejected(predictor: RegionPredictor) -> None:
    embeds = torch.zeros(2, 4, predictor.model.language_model.config.hidden_size)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(ValueError, match="left-padded"):
        generate(predictor.model, embeds, mask, eos_id=2)


def test_packed_batch_matches_each_row_alone_past_the_cache_capacity(predictor: RegionPredictor, encoded,
                                                                      masks) -> None:
    # 70 new tokens outgrow the preallocated cache (64 steps per row): it grows in place.
    batch = _batch(predictor, encoded, masks)
    model = predictor.model
    options = DecodingOptions(max_new_tokens=70, stop_at_eos=False)
    together = generate(model, batch.embeds, batch.attention_mask, eos_id=-1, options=options,
                        prefix_embeds=batch.prefix_embeds)
    for row in range(2):
        alone = generate(model, batch.embeds[row:row + 1], batch.attention_mask[row:row + 1], eos_id=-1,
                         options=options, prefix_embeds=batch.prefix_embeds)
        assert alone.ids[0] == together.ids[row]


def test_finished_rows_are_dropped_and_report_no_logits(predictor: RegionPredictor, encoded, masks) -> None:
    batch = _batch(predictor, encoded, masks)
    model = predictor.model
    free = generate(model, batch.embeds, batch.attention_mask, eos_id=-1, prefix_embeds=batch.prefix_embeds,
                    options=DecodingOptions(max_new_tokens=6))
    eos = free.ids[0][1]
    stopped = generate(model, batch.embeds, batch.attention_mask, eos_id=eos, prefix_embeds=batch.prefix_embeds,
                       options=DecodingOptions(max_new_tokens=6), keep_scores=True)
    assert stopped.finished[0] and stopped.ids[0] == free.ids[0][:free.ids[0].index(eos)]
    done_at = free.ids[0].index(eos)
    for step, scores in enumerate(stopped.scores):
        assert bool(torch.isinf(scores[0]).all()) == (step > done_at)
    for row in range(1, 4):
        if eos not in free.ids[row]:
            assert stopped.ids[row] == free.ids[row]


@pytest.mark.parametrize("rows", [1, 4])
def test_a_chunked_prefill_decodes_as_one_pass(predictor: RegionPredictor, encoded, masks, rows) -> None:
    """Chunks of 17 tokens (prefix and rows cut mid-way) give the one-pass logits and greedy ids."""
    batch = predictor.prepare(encoded, masks, [Query(QUESTIONS["short"], (i,)) for i in range(rows)])
    model = predictor.model

    def run(chunk: int):
        steps = decode_steps(model, batch.embeds, batch.attention_mask, eos_id=-1, prefix_embeds=batch.prefix_embeds,
                             options=DecodingOptions(max_new_tokens=6), prefill_chunk=chunk)
        return list(steps)

    whole, chunked = run(10_000), run(17)
    packed_length = batch.attention_mask.sum().item() + (0 if batch.prefix_embeds is None else batch.prefix_embeds.shape[1])
    assert packed_length > 3 * 17  # really several chunks
    assert [s.tokens for s in chunked] == [s.tokens for s in whole]
    torch.testing.assert_close(chunked[0].logits, whole[0].logits, atol=1e-4, rtol=1e-4)


def test_cancel_between_prefill_chunks_stops_before_the_first_token(predictor: RegionPredictor, encoded,
                                                                   masks) -> None:
    batch = _batch(predictor, encoded, masks)
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return True

    steps = decode_steps(predictor.model, batch.embeds, batch.attention_mask, eos_id=-1,
                         prefix_embeds=batch.prefix_embeds, options=DecodingOptions(max_new_tokens=4),
                         cancel=cancel, prefill_chunk=17)
    assert list(steps) == [] and asked == [1]  # asked after the first chunk, nothing decoded
