"""What ``osprey label`` labels: a list of images, each with its regions or none (to be segmented).

Three inputs, told apart by what INPUT is:

- a folder: every image file under it (recursively), its regions found at labelling time by the
  mask provider's segment-everything (SAM / SAM 2 / MobileSAM with ``--sam``, GrabCut otherwise);
- a COCO instances file (a JSON object with ``images`` and ``annotations``): each image's
  annotations, in file order, region id = the annotation's ``id``;
- an Osprey-format file (a JSON list of records with ``file_name``/``height``/``width``/
  ``annotation``, as Osprey-724K and ``osprey data synth`` write them): each record's
  ``annotation`` list, region id = its ``id`` or its 1-based position.

Images are keyed by their path relative to the image folder (POSIX slashes) and sorted by it: the
order every shard and the merged output follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class LabelError(ValueError):
    """An input that cannot be labelled, named with what is wrong."""


@dataclass(frozen=True)
class Region:
    """One annotated region: its id in the source and its segmentation (polygons, RLE, ...)."""

    id: int | str
    segmentation: Any
    height: int
    width: int

    def decode(self) -> Any:
        """``(H, W)`` bool mask."""
        from osprey.masks import decode_segmentation

        return decode_segmentation(self.segmentation, self.height, self.width)


@dataclass(frozen=True)
class Item:
    """One image to label: its key (relative path), where it is, and its regions (None: segment it)."""

    image: str
    path: Path
    regions: tuple[Region, ...] | None


@dataclass(frozen=True)
class Source:
    kind: str  # "folder" | "coco" | "osprey"
    root: Path  # the image folder keys are relative to
    items: tuple[Item, ...]


def read_source(input_path: str | Path, images: str | Path | None = None) -> Source:
    """The images of ``input_path`` (folder or annotation file) with their regions, sorted by key."""
    path = Path(input_path)
    if path.is_dir():
        if images is not None:
            raise LabelError("--images is for an annotation file; INPUT is already a folder of images")
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise LabelError(f"folder {str(path)!r} holds no image ({', '.join(IMAGE_SUFFIXES)})")
        items = [Item(p.relative_to(path).as_posix(), p, None) for p in files]
        return Source("folder", path, tuple(sorted(items, key=lambda i: i.image)))
    if not path.is_file():
        raise LabelError(f"INPUT {str(path)!r} is neither a folder of images nor an annotation file")
    root = Path(images) if images is not None else path.resolve().parent.parent / "images"
    if not root.is_dir():
        raise LabelError(f"image folder {str(root)!r} does not exist (give it with --images)")
    from osprey.data.parsers.base import load_json

    try:
        data = load_json(path)
    except ValueError as err:  # SourceError: missing or not JSON
        raise LabelError(str(err)) from None
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        kind, items = "coco", _coco_items(path, root)
    elif isinstance(data, list):
        kind, items = "osprey", _osprey_items(data, path, root)
    else:
        raise LabelError(f"{str(path)!r} is neither a COCO instances file (an object with 'images' and "
                         "'annotations') nor an Osprey-format file (a list of records)")
    keys = [i.image for i in items]
    if len(set(keys)) != len(keys):
        raise LabelError(f"{str(path)!r} names an image twice; expected one entry per image")
    return Source(kind, root, tuple(sorted(items, key=lambda i: i.image)))


def _image_path(root: Path, file_name: str, where: str) -> tuple[str, Path]:
    """The key and file of ``file_name``: as given, else its part after the last ``_`` (the official
    ``COCO_train2014_000000xxxxxx.jpg`` -> ``000000xxxxxx.jpg`` rule)."""
    for name in (file_name, file_name.split("_")[-1]):
        if (root / name).is_file():
            return Path(name).as_posix(), root / name
    raise LabelError(f"{where}: image {file_name!r} is not in {str(root)!r}")


def _size(entry: dict, where: str) -> tuple[int, int]:
    try:
        return int(entry["height"]), int(entry["width"])
    except (KeyError, TypeError, ValueError):
        raise LabelError(f"{where}: expected integer 'height' and 'width'") from None


def _coco_items(path: Path, root: Path) -> list[Item]:
    from osprey.data.parsers.coco_style import load_coco_style

    try:
        records = load_coco_style(path)
    except ValueError as err:
        raise LabelError(str(err)) from None
    items = []
    for n, record in enumerate(records):
        info = record["image"]
        where = f"{path.name} image {info.get('id', n)!r}"
        key, file = _image_path(root, str(info.get("file_name", "")), where)
        h, w = _size(info, where)
        regions = [Region(ann.get("id", k), _segmentation(ann, where, k), h, w)
                   for k, ann in enumerate(record["annotations"], 1)]
        items.append(Item(key, file, tuple(regions)))
    return items


def _osprey_items(records: Sequence[Any], path: Path, root: Path) -> list[Item]:
    items = []
    for n, record in enumerate(records):
        where = f"{path.name} record {n}"
        if not isinstance(record, dict) or not isinstance(record.get("annotation"), list):
            raise LabelError(f"{where}: expected an object with 'file_name', 'height', 'width', 'annotation'")
        key, file = _image_path(root, str(record.get("file_name", "")), where)
        h, w = _size(record, where)
        regions = [Region(ann.get("id", k) if isinstance(ann, dict) else k, _segmentation(ann, where, k), h, w)
                   for k, ann in enumerate(record["annotation"], 1)]
        items.append(Item(key, file, tuple(regions)))
    return items


def _segmentation(ann: Any, where: str, k: int) -> Any:
    if not isinstance(ann, dict) or "segmentation" not in ann:
        raise LabelError(f"{where}: annotation {k} has no 'segmentation'")
    return ann["segmentation"]


def shard(items: Sequence[Item], rank: int, world: int) -> list[Item]:
    """Rank ``rank``'s share of ``world``: every ``world``-th image from the ``rank``-th, in key order
    (deterministic, and as even in image count as can be)."""
    if not 0 <= rank < world:
        raise LabelError(f"rank {rank} of world size {world}; expected 0 <= rank < world size")
    return list(items[rank::world])


def rank_and_world() -> tuple[int, int]:
    """This process's (rank, world size): from ``torch.distributed`` when a group is up, else the
    ``RANK``/``WORLD_SIZE`` variables torchrun and ``accelerate launch`` set, else (0, 1)."""
    import os
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise LabelError("RANK / WORLD_SIZE must be integers") from None
