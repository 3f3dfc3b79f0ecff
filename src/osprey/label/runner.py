"""The labelling loop: each image of this rank's share is encoded once, its regions are asked in
fixed batches (a short and a detailed description each) through :class:`RegionPredictor`, and
each batch's lines are appended durably before the next batch starts.

Batches are fixed by position (regions ``[0, B)``, ``[B, 2B)``, ... of an image), whatever the
sharding and whatever a previous run already wrote: a batch with any region missing is asked
whole and only its missing lines are written. So an answer never depends on how the work was
split or interrupted, and a resumed or sharded run writes the same lines as one clean process.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from osprey.label.output import ShardWriter, done_regions, shard_path
from osprey.label.sources import Item, LabelError, Source, shard


@dataclass
class LabelStats:
    images: int = 0  # images of this share
    regions: int = 0  # regions of this share (known ones: a folder's are known once segmented)
    answered: int = 0  # regions answered by this run
    skipped: int = 0  # regions found already written
    seconds: float = 0.0
    dropped_bytes: int = 0  # a torn last line cut off on start
    rank: int = 0
    world: int = 1
    path: Path | None = None
    empty: list[tuple[str, int]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @property
    def regions_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def label(
    source: Source,
    out: Path,
    *,
    predictor: Any,
    provider: Any,
    model_name: str,
    quantize: str = "none",
    short: Any,
    detailed: Any,
    batch_regions: int = 8,
    limit: int | None = None,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> LabelStats:
    """Label this rank's share of ``source`` into ``out``; see the module docstring.

    ``quantize``: how the model's weights are stored (``none``, ``int8``, ``int4``: ``--quantize``),
    written in every line beside ``model``; ``short``/``detailed``: the :class:`DecodingOptions` of
    the two questions; ``limit``: the first
    ``limit`` images of the whole source (before sharding); ``on_batch(lines)`` after each write.
    """
    from tqdm import tqdm

    if batch_regions < 1:
        raise LabelError(f"--batch-regions {batch_regions}; expected >= 1")
    items = list(source.items[:limit] if limit is not None else source.items)
    mine = shard(items, rank, world)
    settings = {"model": model_name, "quantize": quantize, "source": _source_name(source, provider),
                "options": {"short": asdict(short), "detailed": asdict(detailed)}}
    out.mkdir(parents=True, exist_ok=True)
    stats = LabelStats(images=len(mine), rank=rank, world=world, path=shard_path(out, rank))
    start = stats.started = time.perf_counter()
    with ShardWriter(stats.path) as writer:  # (cuts a torn tail before the done set is read)
        stats.dropped_bytes = writer.dropped
        done = done_regions(out, settings)
        known = sum(len(i.regions) for i in mine if i.regions is not None)
        bar = tqdm(total=known or None, unit="region", disable=not progress, file=sys.stderr, dynamic_ncols=True,
                   desc=f"label rank {rank}/{world}" if world > 1 else "label", smoothing=0.1)
        for item in mine:
            count = len(item.regions) if item.regions is not None else _recorded_count(done, item.image)
            if count is not None and all((item.image, i) in done for i in range(count)):
                stats.regions += count
                stats.skipped += count
                if item.regions is None:
                    bar.total = (bar.total or 0) + count
                bar.update(count)
                continue
            masks = _masks(item, provider)
            if item.regions is None:
                bar.total = (bar.total or 0) + len(masks)
                bar.refresh()
            stats.regions += len(item.regions) if item.regions is not None else len(masks)
            answered = _label_image(item, masks, done, writer, predictor, settings, short, detailed,
                                    batch_regions, stats, bar, on_batch)
            stats.answered += answered
        bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


def _source_name(source: Source, provider: Any) -> str:
    return f"everything:{provider.name}" if source.kind == "folder" else source.kind


def _recorded_count(done: dict[tuple[str, int], int], image: str) -> int | None:
    """How many regions segment-everything found in ``image`` on an earlier run (its lines say)."""
    return done.get((image, 0))


def _masks(item: Item, provider: Any) -> list[np.ndarray]:
    from osprey.image import load_image

    if item.regions is not None:
        return []  # decoded batch by batch in _label_image (a COCO image may hold hundreds)
    image = load_image(item.path)
    return [m for m in provider.everything(image) if m.any()]


def _label_image(item: Item, found: list[np.ndarray], done: dict, writer: ShardWriter, predictor: Any,
                 settings: dict, short: Any, detailed: Any, batch: int, stats: LabelStats, bar: Any,
                 on_batch: Callable[[int], None] | None) -> int:
    from osprey.image import load_image
    from osprey.masks import encode_rle, mask_box

    count = len(item.regions) if item.regions is not None else len(found)
    ids: Sequence[int | str] = [r.id for r in item.regions] if item.regions is not None else range(1, count + 1)
    encoded = None
    answered = 0
    for first in range(0, count, batch):
        indices = list(range(first, min(first + batch, count)))
        missing = [i for i in indices if (item.image, i) not in done]
        if not missing:
            stats.skipped += len(indices)
            bar.update(len(indices))
            continue
        if encoded is None:
            image = load_image(item.path)
            encoded = predictor.encode(image)
            size = (image.height, image.width)
        masks = [_decoded(item, i, size) if item.regions is not None else found[i] for i in indices]
        asked = [k for k, m in enumerate(masks) if m.any()]  # an empty mask cannot be asked about
        stack = np.stack([masks[k] for k in asked]) if asked else None
        shorts = predictor.describe(encoded, stack, "short", short) if asked else []
        details = predictor.describe(encoded, stack, "detailed", detailed) if asked else []
        answers = {indices[k]: (s, d) for k, s, d in zip(asked, shorts, details, strict=True)}
        lines = []
        for k, i in enumerate(indices):
            if i not in missing:
                continue
            s, d = answers.get(i, (None, None))
            if i not in answers:
                stats.empty.append((item.image, i))
            lines.append({"image": item.image, "index": i, "region": ids[i], "regions_in_image": count,
                          "rle": encode_rle(masks[k]), "box": mask_box(masks[k]), "area": int(np.count_nonzero(masks[k])),
                          "short": None if s is None else str(s), "detailed": None if d is None else str(d),
                          "short_tokens": None if s is None else s.completion_tokens,
                          "detailed_tokens": None if d is None else d.completion_tokens, **settings})
        writer.write(lines)
        answered += len(lines)
        stats.skipped += len(indices) - len(lines)
        rate = (stats.answered + answered) / max(1e-9, time.perf_counter() - stats.started)
        bar.set_postfix_str(f"{rate:.2f} regions/s answered", refresh=False)  # (the bar's own rate counts skips)
        bar.update(len(indices))
        if on_batch is not None:
            on_batch(len(lines))
    return answered


def _decoded(item: Item, index: int, size: tuple[int, int]) -> np.ndarray:
    region = item.regions[index]  # type: ignore[index]
    if (region.height, region.width) != size:
        raise LabelError(f"{item.image}: the annotations say {region.height}x{region.width} (HxW), the image is "
                         f"{size[0]}x{size[1]}")
    try:
        return region.decode()
    except ValueError as err:  # MaskError
        raise LabelError(f"{item.image} region {region.id!r}: {err}") from None
