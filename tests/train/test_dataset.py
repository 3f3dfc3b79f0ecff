"""Training dataset: rendering, truncation that never cuts slots, skips counted, sampler, collate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_helpers import entries

from osprey.config import tiny
from osprey.data.dataset import (
    TOO_LONG,
    Batch,
    DataStats,
    LengthGroupedSampler,
    ModelTransform,
    RegionDataset,
    Skipped,
    collate,
)
from osprey.data.mixtures import mixture_from_dict
from osprey.model.language_model import tokenizer_for
from osprey.model.osprey import build_model
from osprey.text.render import IGNORE_INDEX


@pytest.fixture(scope="module")
def model():
    return build_model(tiny())


def _dataset(model, world: Path, names=("osprey_short_form",), max_length=2048, **kw) -> RegionDataset:
    transform = ModelTransform.for_model(model, tokenizer_for(model.config.language_model), max_length=max_length)
    return RegionDataset(mixture_from_dict(entries(*names)).under(world), transform, **kw)


def test_example_matches_model_layout(model, world):
    ds = _dataset(model, world)
    ex = ds[0]
    slots = model.slots
    assert ex.pixel_values.shape == (3, 64, 64)
    assert int((ex.input_ids == slots.image).sum()) == model.num_image_tokens
    n_regions = int((ex.input_ids == slots.mask).sum())
    assert n_regions == int((ex.input_ids == slots.pos).sum()) == ex.masks.shape[0] > 0
    assert ex.masks.shape[-2:] == (64, 64)  # masks stay at the image's own size (official)
    supervised = ex.labels != IGNORE_INDEX
    assert supervised.any() and not supervised[ex.input_ids == slots.image].any()
    # the same record, same epoch: same example; the model can be fed it
    again = ds[0]
    assert torch.equal(again.input_ids, ex.input_ids)
    batch = collate([ex, again], pad_id=0)
    out = model(batch.input_ids, batch.pixel_values, regions=_regions(batch), attention_mask=batch.attention_mask,
                labels=batch.labels)
    assert torch.isfinite(out.loss)


def _regions(batch: Batch):
    from osprey.model.osprey import RegionBatch

    return RegionBatch(batch.masks)


def test_truncation_drops_whole_turns_and_counts(model, world):
    full = _dataset(model, world)[0]
    limit = int(full.input_ids.numel()) - 5  # forces at least one exchange out
    short = _dataset(model, world, max_length=limit)[0]
    assert not isinstance(short, Skipped)
    assert short.dropped_turns >= 1 and short.input_ids.numel() <= limit
    # the image and every kept region are whole: slots come in complete pairs, masks match them
    slots = model.slots
    assert int((short.input_ids == slots.image).sum()) == model.num_image_tokens
    assert int((short.input_ids == slots.mask).sum()) == int((short.input_ids == slots.pos).sum())
    assert short.masks.shape[0] == int((short.input_ids == slots.mask).sum())
    # the kept prefix is the full example's prefix; the sequence still ends with an answer's eos
    n = short.input_ids.numel()
    assert torch.equal(short.input_ids, full.input_ids[:n])
    assert short.labels[-1] != IGNORE_INDEX
    batch = collate([short], pad_id=0)
    assert batch.stats.truncated_samples == 1 and batch.stats.dropped_turns == short.dropped_turns


def test_too_long_first_exchange_is_skipped_and_counted(model, world):
    ds = _dataset(model, world, max_length=model.num_image_tokens + 3)
    item = ds[0]
    assert isinstance(item, Skipped) and item.reason == TOO_LONG
    good = _dataset(model, world)[1]
    batch = collate([item, good], pad_id=0)
    assert batch.stats.skipped[TOO_LONG] == 1 and batch.stats.examples == 1
    assert batch.input_ids.shape[0] == 1
    assert isinstance(collate([item], pad_id=0).stats, DataStats)


def test_all_skipped_micro_batch_collates_to_an_empty_batch_with_its_stats(model, world):
    """A micro-batch whose every example was filtered out is still a Batch: empty, counting the skips."""
    ds = _dataset(model, world, max_length=model.num_image_tokens + 3)
    batch = collate([ds[0], ds[1]], pad_id=0)
    assert isinstance(batch, Batch)
    assert batch.input_ids.shape[0] == batch.labels.shape[0] == batch.pixel_values.shape[0] == 0
    assert batch.masks == [] and batch.sources == []
    assert batch.num_tokens == 0 and batch.num_supervised == 0
    assert batch.stats.skipped == {TOO_LONG: 2} and batch.stats.examples == 0


def test_batch_to_gives_the_model_its_keyword_arguments(model, world):
    from osprey.model.osprey import RegionBatch

    ds = _dataset(model, world)
    batch = collate([ds[0], ds[1]], pad_id=0)
    kwargs = batch.to("cpu", regions=RegionBatch)
    assert set(kwargs) == {"input_ids", "pixel_values", "regions", "attention_mask", "labels"}
    assert isinstance(kwargs["regions"], RegionBatch) and len(kwargs["regions"].masks) == 2
    out = model(**kwargs)
    expected = model(batch.input_ids, batch.pixel_values, regions=_regions(batch),
                     attention_mask=batch.attention_mask, labels=batch.labels)
    assert torch.equal(out.loss, expected.loss)


def test_broken_record_is_counted_not_fatal(model, world, tmp_path):
    records = json.loads((world / "annotations/osprey_short_form.json").read_text())
    records[1]["conversations"] = []  # no question/answer pairs
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps(records[:3]))
    transform = ModelTransform.for_model(model, tokenizer_for(model.config.language_model))
    mixture = mixture_from_dict([{"parser": "osprey_short_form", "annotations": str(bad),
                                  "images": str(world / "images")}])
    ds = RegionDataset(mixture, transform)
    batch = collate([ds[i] for i in range(3)], pad_id=0)
    assert batch.stats.skipped == {"parse_failed": 1} and batch.input_ids.shape[0] == 2


def test_questions_are_redrawn_per_epoch(model, world):
    ds = _dataset(model, world, names=("osprey_detail_description",))
    first = [ds.sample(i).turns[0].text for i in range(len(ds))]
    assert first == [ds.sample(i).turns[0].text for i in range(len(ds))]  # same epoch: same draw
    ds.set_epoch(1)
    assert first != [ds.sample(i).turns[0].text for i in range(len(ds))]


def test_collate_pads_right():
    from osprey.data.dataset import Example

    a = Example(torch.tensor([1, 2, 3]), torch.tensor([-100, 2, 3]), torch.zeros(3, 4, 4), torch.zeros(0, 4, 4), "x")
    b = Example(torch.tensor([5]), torch.tensor([5]), torch.ones(3, 4, 4), torch.zeros(1, 4, 4), "y")
    batch = collate([a, b], pad_id=9)
    assert batch.input_ids.tolist() == [[1, 2, 3], [5, 9, 9]]
    assert batch.labels.tolist() == [[-100, 2, 3], [5, -100, -100]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert [m.shape[0] for m in batch.masks] == [0, 1]


def test_length_grouped_sampler_is_a_seeded_permutation_grouping_lengths():
    lengths = list(range(100))
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=3, group=5)
    order = sampler.order()
    assert sorted(order) == lengths and order == sampler.order()
    sampler.set_epoch(1)
    assert sampler.order() != order
    batches = [order[i : i + 4] for i in range(0, 100, 4)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    plain = LengthGroupedSampler(lengths, batch_size=4, seed=3, grouped=False).order()
    plain_spread = sum(max(b) - min(b) for b in (plain[i : i + 4] for i in range(0, 100, 4))) / 25
    assert spread < plain_spread / 3


def test_geometry_region_text_follows_each_region_slot(model, world):
    """With ``region_text="geometry"`` each region's slots are followed by its mask's centroid and
    area in digits; the masks, region order and answers are those of the plain layout."""
    from osprey.text.geometry import region_geometry_text

    plain = _dataset(model, world)[0]
    geo_model = build_model(tiny().replace(region_text="geometry"))
    geo = _dataset(geo_model, world)[0]
    tokenizer = tokenizer_for(model.config.language_model)
    assert torch.equal(geo.masks, plain.masks)
    assert torch.equal(geo.labels[geo.labels != IGNORE_INDEX], plain.labels[plain.labels != IGNORE_INDEX])
    ids = geo.input_ids.tolist()
    pos_at = [i for i, t in enumerate(ids) if t == model.slots.pos]
    assert len(pos_at) == geo.masks.shape[0]
    for slot, mask in zip(pos_at, geo.masks, strict=True):
        assert tokenizer.decode(ids[slot + 1 : slot + 40]).startswith(region_geometry_text(mask))
    assert len(ids) > len(plain.input_ids)


def test_region_text_mode_is_checked():
    with pytest.raises(ValueError, match="region_text must be one of"):
        tiny().replace(region_text="box")
