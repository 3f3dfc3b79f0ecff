"""Per-stage data mixtures as data: which files, read by which parser, with which image folder.

A mixture is a list of :class:`MixtureEntry`; paths are relative to a data root given at run time
(:meth:`Mixture.under`). ``weight`` is how many times the entry's records are used per epoch
(1.0 = each record once, as the official ``ConcatDataset`` does; 0.5 = a random half; 2.0 = twice).
Users supply their own mixture as a JSON or YAML file (:func:`load_mixture`)::

    name: my_stage3
    entries:
      - {parser: osprey_conversation, annotations: Osprey-724K/osprey_conversation.json, images: coco/imgs}
      - {parser: vg, annotations: vg/vg_train_with_mask.json, images: vg/image, weight: 0.5}

The built-in mixtures follow the official ``osprey/configs/stage2.json`` and ``stage3.json`` with
their inconsistencies resolved: one COCO image folder (``coco/imgs``, train2017 + val2017; the
official stage 3 used ``./data/coco_imgs/``), the detailed-description file under its released name
``osprey_detail_description.json`` (the config said ``osprey_detailed_description.json``). (The
official type ``coco_data`` does reach ``COCODataset``: ``data_modules.py`` maps it.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from osprey.data.parsers import PARSERS


@dataclass(frozen=True)
class MixtureEntry:
    """One source of a mixture."""

    parser: str  # a name in osprey.data.parsers.PARSERS
    annotations: str  # annotation file, relative to the data root unless absolute
    images: str  # image folder, relative to the data root unless absolute
    weight: float = 1.0  # passes over the records per epoch

    def __post_init__(self) -> None:
        if self.parser not in PARSERS:
            raise ValueError(
                f"mixture entry parser {self.parser!r}; expected one of {', '.join(sorted(PARSERS))}"
            )
        if not self.weight >= 0:
            raise ValueError(f"mixture entry weight {self.weight!r} for {self.annotations!r}; expected >= 0")


@dataclass(frozen=True)
class Mixture:
    """A named list of sources, read together for one training stage."""

    name: str
    entries: tuple[MixtureEntry, ...]

    def under(self, root: str | Path) -> Mixture:
        """The same mixture with relative paths resolved against the data ``root``."""
        root = Path(root)
        return replace(
            self,
            entries=tuple(
                replace(e, annotations=str(root / e.annotations), images=str(root / e.images))
                for e in self.entries
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "entries": [asdict(e) for e in self.entries]}


STAGE2 = Mixture(
    "stage2",
    (
        MixtureEntry("coco_instances", "coco/annotations/instances_train2017.json", "coco/imgs"),
        MixtureEntry("refcoco", "refcocos/finetune_refcoco_train_with_mask.json", "coco/imgs"),
        MixtureEntry("refcoco+", "refcocos/finetune_refcoco+_train_with_mask.json", "coco/imgs"),
        MixtureEntry(
            "pascal_part",
            "part_data/pascal_part/train.json",
            "part_data/pascal_part/VOCdevkit/VOC2010/JPEGImages",
        ),
        MixtureEntry(
            "part_imagenet", "part_data/partImagenet/train_format.json", "part_data/partImagenet/train"
        ),
    ),
)

STAGE3 = Mixture(
    "stage3",
    (
        MixtureEntry("osprey_short_form", "Osprey-724K/osprey_short_form.json", "coco/imgs"),
        MixtureEntry(
            "osprey_lvis_positive_negative", "Osprey-724K/osprey_lvis_positive_negative.json", "coco/imgs"
        ),
        MixtureEntry("osprey_conversation", "Osprey-724K/osprey_conversation.json", "coco/imgs"),
        MixtureEntry("osprey_detail_description", "Osprey-724K/osprey_detail_description.json", "coco/imgs"),
        MixtureEntry("osprey_part_level", "Osprey-724K/osprey_part_level.json", "coco/imgs"),
        MixtureEntry("vg", "vg/vg_train_with_mask.json", "vg/image"),
        MixtureEntry("vcr", "vcr/train.jsonl", "vcr/vcr1images"),
    ),
)

MIXTURES: dict[str, Mixture] = {m.name: m for m in (STAGE2, STAGE3)}


def mixture_from_dict(data: Mapping[str, Any] | list[Any], *, name: str = "custom") -> Mixture:
    """A mixture from ``{"name", "entries": [...]}`` or a bare list of entries."""
    if isinstance(data, list):
        data = {"name": name, "entries": data}
    if not isinstance(data, Mapping) or not isinstance(data.get("entries"), list):
        raise ValueError(f"mixture {str(data)[:80]}; expected a list of entries or a mapping with 'entries'")
    entries = []
    for i, raw in enumerate(data["entries"]):
        if not isinstance(raw, Mapping):
            raise ValueError(f"mixture entry {i} is {raw!r}; expected a mapping")
        unknown = set(raw) - {"parser", "annotations", "images", "weight"}
        missing = {"parser", "annotations", "images"} - set(raw)
        if unknown or missing:
            raise ValueError(
                f"mixture entry {i} has unknown keys {sorted(unknown)} / lacks {sorted(missing)}; "
                "expected parser, annotations, images and optional weight"
            )
        entries.append(
            MixtureEntry(
                str(raw["parser"]), str(raw["annotations"]), str(raw["images"]), float(raw.get("weight", 1.0))
            )
        )
    return Mixture(str(data.get("name", name)), tuple(entries))


def load_mixture(path_or_name: str | Path) -> Mixture:
    """A built-in mixture by name (``stage2``, ``stage3``) or one read from a JSON/YAML file."""
    if str(path_or_name) in MIXTURES:
        return MIXTURES[str(path_or_name)]
    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"mixture {str(path)!r} is neither a file nor one of {', '.join(MIXTURES)}")
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return mixture_from_dict(data, name=path.stem)
