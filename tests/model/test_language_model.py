"""Our LLM path (embed + splice + forward_embeds) against a plain LlamaForCausalLM, same weights."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from osprey.config import tiny
from osprey.model import RegionBatch, build_model
from osprey.model.generation import DecodingOptions, generate


def test_text_only_logits_equal_plain_llama() -> None:
    model = build_model(tiny()).eval()
    hf = dict(tiny().language_model.hf_config)
    hf.pop("model_type")
    reference = LlamaForCausalLM(LlamaConfig(**hf)).eval()
    reference.load_state_dict(model.language_model.state_dict())
    ids = torch.randint(3, 32000, (2, 17))
    with torch.no_grad():
        ours = model(ids).logits
        theirs = reference(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_splice_places_features_in_their_slots() -> None:
    model = build_model(tiny()).eval()
    n = model.num_image_tokens
    s = model.slots
    ids = torch.tensor([[1, 5] + [s.image] * n + [7, s.mask, s.pos, 8, s.mask, s.pos, 2]])
    image = torch.randn(1, n, 64)
    mask_tokens, pos_tokens = torch.randn(2, 64), torch.randn(2, 64)
    embeds = model.embed(ids, image, mask_tokens, pos_tokens)
    torch.testing.assert_close(embeds[0, 2 : 2 + n], image[0])
    torch.testing.assert_close(embeds[0, [3 + n, 6 + n]], mask_tokens)
    torch.testing.assert_close(embeds[0, [4 + n, 7 + n]], pos_tokens)
    text = model.language_model.get_input_embeddings()(torch.tensor([1, 5, 7, 8, 2]))
    torch.testing.assert_close(embeds[0, [0, 1, 2 + n, 5 + n, 8 + n]], text)


def test_slot_count_mismatch_is_a_clear_error() -> None:
    model = build_model(tiny())
    ids = torch.tensor([[1, model.slots.mask, model.slots.pos, 2]])
    try:
        model.embed(ids, None, torch.randn(2, 64), torch.randn(2, 64))
    except ValueError as err:
        assert "1 <mask> slots but 2" in str(err)
    else:
        raise AssertionError("expected a ValueError")


def test_loss_path_matches_full_logits_cross_entropy() -> None:
    model = build_model(tiny()).eval()
    s = model.slots
    ids = torch.tensor([[1, 9] + [s.image] * model.num_image_tokens + [s.mask, s.pos, 11, 12, 13, 2]])
    labels = torch.full_like(ids, -100)
    labels[0, -3:] = ids[0, -3:]
    pixels = torch.randn(1, 3, 64, 64)
    regions = RegionBatch([torch.ones(1, 30, 40)])
    with torch.no_grad():
        loss = model(ids, pixels, regions, labels=labels).loss
        logits = model(ids, pixels, regions).logits
    expected = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_cached_greedy_equals_recomputing_and_left_padding_is_neutral() -> None:
    model = build_model(tiny()).eval()
    ids = torch.randint(3, 32000, (1, 9))
    embeds = model.embed(ids)
    with torch.no_grad():
        cached = generate(model, embeds, eos_id=-1, options=DecodingOptions(max_new_tokens=5)).ids[0]
        seq = ids
        for _ in range(5):
            nxt = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
        assert cached == seq[0, 9:].tolist()
        padded = torch.cat([torch.zeros(1, 4, 64), embeds], 1)
        mask = torch.tensor([[0] * 4 + [1] * 9])
        batch = generate(model, torch.cat([padded, torch.cat([embeds[:, :4], embeds], 1)]),
                         torch.cat([mask, torch.ones(1, 13, dtype=torch.long)]), eos_id=-1,
                         options=DecodingOptions(max_new_tokens=5))
        assert batch.ids[0] == cached
