"""Training dataset, model transform, length-grouped sampler and collate.

Data flow: a :class:`~osprey.data.mixtures.Mixture` names annotation files and their parsers;
:class:`RegionDataset` reads every file once into raw records (a few hundred bytes each) and parses
a record *when it is used*, with an RNG seeded by ``(seed, epoch, record)``, so question templates
are drawn afresh every epoch and reproducibly. :class:`ModelTransform` turns a :class:`Sample` into
model inputs exactly as the official loaders do (osprey-official.md §1.3): the image stretched to
``S x S`` with CLIP normalisation, masks kept at the image's own ``H x W``, the conversation rendered
with the model's template into ids and labels in one pass.

Truncation never cuts through the image or a region's slots: when a conversation is longer than
``max_length``, whole (user, assistant) turn pairs are dropped from the end, and regions no longer
mentioned are dropped with them. A sample whose first exchange alone is too long is skipped.
Every skip is counted in :class:`DataStats` (per reason) and reported by the trainer.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from osprey.data.errors import RecordError
from osprey.data.mixtures import Mixture
from osprey.data.parsers import Parser, get_parser
from osprey.data.sample import Sample, region_mentions
from osprey.data.sampler import LengthGroupedSampler  # noqa: F401  (imported from here by the loop and tests)
from osprey.image import load_image, preprocess
from osprey.text.conversation import ConversationTemplate, Turn
from osprey.text.geometry import check_region_text, region_texts
from osprey.text.render import IGNORE_INDEX, render_conversation
from osprey.text.tokenizer import SlotIds, TextTokenizer

# Reasons a record or sample yields no training example (keys of DataStats.skipped).
PARSE_FAILED = "parse_failed"
TOO_LONG = "first_turn_too_long"
IMAGE_UNREADABLE = "image_unreadable"
MASK_SIZE_MISMATCH = "mask_image_size_mismatch"


class MaskSizeError(ValueError):
    """A record's masks are not the size of its image (counted as MASK_SIZE_MISMATCH)."""


@dataclass
class DataStats:
    """What the data path dropped, per reason; nothing is dropped without a count here."""

    skipped: Counter[str] = field(default_factory=Counter)
    truncated_samples: int = 0  # samples that lost later turns to max_length
    dropped_turns: int = 0  # (user, assistant) pairs dropped by truncation
    examples: int = 0  # examples produced
    repaired: Counter[str] = field(default_factory=Counter)  # lenient mode: repairs per kind (data.lenient)

    def merge(self, other: DataStats) -> None:
        self.skipped.update(other.skipped)
        self.repaired.update(other.repaired)
        self.truncated_samples += other.truncated_samples
        self.dropped_turns += other.dropped_turns
        self.examples += other.examples

    def merge_dict(self, data: dict[str, Any]) -> None:
        """Add counts saved by :meth:`to_dict` (a checkpoint's data state)."""
        self.skipped.update(data.get("skipped", {}))
        self.repaired.update(data.get("repaired", {}))
        self.truncated_samples += int(data.get("truncated_samples", 0))
        self.dropped_turns += int(data.get("dropped_turns", 0))
        self.examples += int(data.get("examples", 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "skipped": dict(self.skipped),
            "truncated_samples": self.truncated_samples,
            "dropped_turns": self.dropped_turns,
            "repaired": dict(self.repaired),
        }


@dataclass
class Example:
    """One model-ready training example."""

    input_ids: torch.Tensor  # (L,) long
    labels: torch.Tensor  # (L,) long, IGNORE_INDEX where unsupervised
    pixel_values: torch.Tensor  # (3, S, S) float32
    masks: torch.Tensor  # (R, H, W) float32, in slot order (the j-th <mask> slot uses masks[j])
    source: str
    dropped_turns: int = 0  # (user, assistant) pairs truncation removed
    repaired: dict[str, int] = field(default_factory=dict)  # lenient repairs of its record


@dataclass(frozen=True)
class Skipped:
    """Placeholder for a record that yields no example; ``reason`` is a DataStats key."""

    reason: str
    detail: str = ""


class ModelTransform:
    """Sample -> :class:`Example` for one model: preprocessing, template, tokenizer, slots."""

    def __init__(
        self,
        *,
        tokenizer: TextTokenizer,
        template: ConversationTemplate,
        slots: SlotIds,
        num_image_tokens: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        max_length: int = 2048,
        region_text: str = "none",
        truncate: bool = True,
    ) -> None:
        self.region_text = check_region_text(region_text)
        self.tokenizer = tokenizer
        self.template = template
        self.slots = slots
        self.num_image_tokens = num_image_tokens
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.max_length = max_length
        self.truncate = truncate  # False: never drop turns (the official tokenizer_image_token)

    @classmethod
    def for_model(cls, model: Any, tokenizer: TextTokenizer, *, max_length: int = 2048,
                  template: str | None = None, truncate: bool = True) -> ModelTransform:
        """The transform matching an :class:`~osprey.model.osprey.OspreyModel`'s config; ``template``
        overrides the model's (training renders with ``v1`` where the official does)."""
        from osprey.text.conversation import get_template

        vision = model.config.vision
        return cls(
            tokenizer=tokenizer,
            template=get_template(template or model.config.template),
            slots=model.slots,
            num_image_tokens=model.num_image_tokens,
            image_size=vision.image_size,
            mean=vision.mean,
            std=vision.std,
            max_length=max_length,
            region_text=getattr(model.config, "region_text", "none"),
            truncate=truncate,
        )

    def render(
        self, turns: Sequence[Turn], num_regions: int, region_texts: Sequence[str] | None = None
    ) -> tuple[list[int], list[int], list[int], int]:
        """(ids, labels, region_order, dropped_pairs) of the longest turn prefix within max_length.

        Raises ``ValueError`` when even the first exchange does not fit.
        """
        turns = list(turns)
        dropped = 0
        while True:
            rendered = render_conversation(
                turns,
                template=self.template,
                tokenizer=self.tokenizer,
                slots=self.slots,
                num_image_tokens=self.num_image_tokens,
                num_regions=num_regions,
                add_generation_prompt=False,
                region_texts=region_texts,
            )
            if not self.truncate or len(rendered.input_ids) <= self.max_length:
                return rendered.input_ids, rendered.labels, rendered.region_order, dropped
            if len(turns) <= 2:
                raise ValueError(
                    f"the first exchange alone is {len(rendered.input_ids)} tokens; max_length={self.max_length}"
                )
            turns = turns[:-2] if len(turns) % 2 == 0 else turns[:-1]
            dropped += 1

    def __call__(self, sample: Sample, image_root: str | Path | None) -> Example:
        decode = functools.cache(lambda k: sample.regions[k].decode(image_root))  # each mask once
        texts = None
        if self.region_text != "none":
            # The text after each region's slots comes from its mask, so every mask is decoded first.
            texts = region_texts([decode(k) for k in range(len(sample.regions))], self.region_text)
        ids, labels, order, dropped = self.render(sample.turns, len(sample.regions), texts)
        image = load_image(Path(image_root or ".") / sample.image.path)
        pixels = preprocess(image, self.image_size, self.mean, self.std)
        if order:
            decoded = [decode(k) for k in order]
            masks = torch.from_numpy(np.stack(decoded)).float()
            if tuple(masks.shape[-2:]) != (image.height, image.width):
                raise MaskSizeError(
                    f"{sample.sample_id}: masks are {tuple(masks.shape[-2:])} but the image is "
                    f"{(image.height, image.width)}"
                )
        else:
            masks = torch.zeros(0, image.height, image.width)
        return Example(
            input_ids=torch.tensor(ids, dtype=torch.long),
            labels=torch.tensor(labels, dtype=torch.long),
            pixel_values=pixels,
            masks=masks,
            source=sample.source,
            dropped_turns=dropped,
        )


@dataclass(frozen=True)
class _Entry:
    parser: Parser
    records: list[Any]
    image_root: str
    source: str


class RegionDataset(Dataset):
    """Every record of a mixture, parsed on use with a per-(epoch, record) RNG.

    ``dataset[i]`` returns an :class:`Example`, or :class:`Skipped` with the reason when record ``i``
    yields nothing usable; :func:`collate` leaves skips out of the batch and counts them in
    ``Batch.stats`` (so counts survive DataLoader worker processes).
    Entry weights repeat records (2.0 = twice) or take a seeded subset (0.5 = a random half).
    """

    def __init__(
        self, mixture: Mixture, transform: ModelTransform, *, seed: int = 0, limit: int | None = None,
        lenient: bool = False,
    ) -> None:
        self.transform = transform
        self.lenient = lenient  # data.lenient: repair what the official trains on, counted
        self.seed = seed
        self.epoch = 0
        self._entries: list[_Entry] = []
        self._index: list[tuple[int, int]] = []  # (entry, record)
        rng = random.Random(seed)
        for e, item in enumerate(mixture.entries):
            parser = get_parser(item.parser)
            records = parser.load(item.annotations, image_root=item.images)
            self._entries.append(_Entry(parser, records, item.images, item.parser))
            whole, frac = divmod(item.weight, 1.0)
            chosen = list(range(len(records))) * int(whole)
            chosen += sorted(rng.sample(range(len(records)), round(frac * len(records))))
            self._index += [(e, r) for r in chosen]
        if limit is not None:
            self._index = self._index[:limit]
        if not self._index:
            raise ValueError(f"mixture {mixture.name!r} holds no records")

    def __len__(self) -> int:
        return len(self._index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sample(self, i: int) -> Sample | Skipped:
        """Record ``i`` parsed for the current epoch (one of its samples, seeded), or why not."""
        e, r = self._index[i]
        entry = self._entries[e]
        rng = random.Random(f"{self.seed}/{self.epoch}/{e}/{r}")
        record = entry.records[r]
        self._repairs: Counter[str] = Counter()
        if self.lenient:
            from osprey.data.lenient import repair_record

            record = repair_record(record, entry.source, self._repairs)
        try:
            samples = entry.parser.parse(record, rng=rng, index=r)
        except RecordError as err:
            return Skipped(PARSE_FAILED, f"{entry.source} record {r}: {err}")
        if not samples:
            return Skipped(PARSE_FAILED, f"{entry.source} record {r}: no sample")
        return samples[rng.randrange(len(samples))] if len(samples) > 1 else samples[0]

    def __getitem__(self, i: int) -> Example | Skipped:
        sample = self.sample(i)
        if isinstance(sample, Skipped):
            return sample
        e, _ = self._index[i]
        repairs = dict(getattr(self, "_repairs", {}))
        try:
            example = self.transform(sample, self._entries[e].image_root)
            example.repaired = repairs
            return example
        except MaskSizeError as err:
            return Skipped(MASK_SIZE_MISMATCH, str(err))
        except ValueError as err:
            return Skipped(TOO_LONG, f"{sample.sample_id}: {err}")
        except OSError as err:
            return Skipped(IMAGE_UNREADABLE, f"{sample.sample_id}: {err}")

    def length_estimate(self, i: int) -> int:
        """A cheap token-count estimate for length grouping (no tokenizer, no image)."""
        e, r = self._index[i]
        record = self._entries[e].records[r]
        text = str(record.get("conversations", record)) if isinstance(record, dict) else str(record)
        return self.transform.num_image_tokens + len(text) // 4 + 2 * len(region_mentions(text))


@dataclass
class Batch:
    """A padded batch: ids/labels/attention (B, L), pixels (B, 3, S, S), masks per image (R_b, H_b, W_b).

    ``stats`` counts what the data path dropped on the way; when every example was skipped the
    batch is empty (B = 0) and carries only those counts.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    pixel_values: torch.Tensor
    masks: list[torch.Tensor]
    sources: list[str]
    stats: DataStats

    @classmethod
    def empty(cls, stats: DataStats) -> Batch:
        none = torch.zeros((0, 0), dtype=torch.long)
        return cls(input_ids=none, labels=none.clone(), attention_mask=none.clone(),
                   pixel_values=torch.zeros((0, 3, 0, 0)), masks=[], sources=[], stats=stats)

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_supervised(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())

    def to(self, device: torch.device | str, *, regions: Callable[[list[torch.Tensor]], Any]) -> dict[str, Any]:
        """The model's keyword arguments, on ``device``. ``regions`` wraps the per-image masks in
        the model's region type (``osprey.model.osprey.RegionBatch``): data code does not import
        the model (tests/test_layers.py)."""
        return {
            "input_ids": self.input_ids.to(device),
            "pixel_values": self.pixel_values.to(device),
            "regions": regions([m.to(device) for m in self.masks]),
            "attention_mask": self.attention_mask.to(device),
            "labels": self.labels.to(device),
        }


def collate(examples: Sequence[Example | Skipped], *, pad_id: int) -> Batch:
    """Right-pad ids (``pad_id``) and labels (IGNORE_INDEX).

    Skips are counted in the batch's ``stats``; when every example was skipped the batch is empty
    (:meth:`Batch.empty`), so the caller counts them and moves on without a special case.
    """
    stats = DataStats()
    kept = [e for e in examples if isinstance(e, Example)]
    for e in examples:
        if isinstance(e, Skipped):
            stats.skipped[e.reason] += 1
    stats.examples = len(kept)
    stats.truncated_samples = sum(1 for e in kept if e.dropped_turns)
    stats.dropped_turns = sum(e.dropped_turns for e in kept)
    for e in kept:
        stats.repaired.update(e.repaired)
    if not kept:
        return Batch.empty(stats)
    length = max(int(e.input_ids.numel()) for e in kept)
    ids = torch.full((len(kept), length), pad_id, dtype=torch.long)
    labels = torch.full((len(kept), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(kept), length), dtype=torch.long)
    for b, e in enumerate(kept):
        n = int(e.input_ids.numel())
        ids[b, :n], labels[b, :n], attention[b, :n] = e.input_ids, e.labels, 1
    return Batch(
        input_ids=ids,
        labels=labels,
        attention_mask=attention,
        pixel_values=torch.stack([e.pixel_values for e in kept]),
        masks=[e.masks for e in kept],
        sources=[e.source for e in kept],
        stats=stats,
    )
