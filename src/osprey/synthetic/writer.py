"""Writing a split of the synthetic world in the official formats.

Layout of ``out_dir``::

    images/000000000042.png                    one PNG per seed (image id = seed)
    annotations/instances.json                 COCO instances (+ attributes and parts per annotation)
    annotations/osprey_short_form.json         Osprey-724K records, one file per subset, official names
    annotations/osprey_conversation.json
    annotations/osprey_detail_description.json
    annotations/osprey_part_level.json
    annotations/osprey_lvis_positive_negative.json
    annotations/llava_captions.json            image captions, LLaVA layout (stage 1)
    annotations/vg_objects.json                region captions of objects, Visual Genome layout (stage 2)
    annotations/vg_parts.json                  region captions of parts, Visual Genome layout (stage 2)
    eval_questions.jsonl                       one stand-alone question per line, with metadata
    manifest.json                              what was written, from which seeds and config

``instances.json`` is also the stage-2 category-naming source (Osprey's ``COCODataset`` reads COCO
instances and answers with the category name). Records and annotations are streamed to disk as the
scenes are generated, so memory does not grow with the split.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from osprey.masks import encode_instances
from osprey.synthetic.facts import part_answerable
from osprey.synthetic.questions import (
    ALL_SUBSETS,
    SubsetRecord,
    build_records,
    eval_items,
    part_caption,
    region_caption,
)
from osprey.synthetic.seeds import check_split_seeds, test_seeds, train_seeds
from osprey.synthetic.vocabulary import CATEGORIES, COLOUR_NAMES, SIZE_NAMES, TEXTURES, category_id
from osprey.synthetic.world import Scene, WorldConfig, generate_scene

__all__ = [
    "ALL_SUBSETS",
    "OSPREY_FILES",
    "SplitManifest",
    "annotation_id",
    "image_file_name",
    "part_id",
    "test_seeds",
    "train_seeds",
    "write_split",
]

# Subset -> official Osprey-724K file name (§3.1). category_naming has no file of its own: it is
# instances.json, like Osprey's stage-2 COCO data.
OSPREY_FILES: dict[str, str] = {
    "short_form": "osprey_short_form.json",
    "conversation": "osprey_conversation.json",
    "detail_description": "osprey_detail_description.json",
    "part_level": "osprey_part_level.json",
    "positive_negative": "osprey_lvis_positive_negative.json",
}
INSTANCES_FILE = "annotations/instances.json"
CAPTIONS_FILE = "annotations/llava_captions.json"  # image-level captions, LLaVA layout (stage 1)
# Region captions in the layout of Osprey's stage-2 Visual Genome file (``vg_train_with_mask.json``:
# COCO images + annotations, one ``caption`` per annotation), read by the ``vg`` parser.
VG_OBJECTS_FILE = "annotations/vg_objects.json"
VG_PARTS_FILE = "annotations/vg_parts.json"
CAPTION_PROMPT = "<image>\nGive a brief description of the image."
EVAL_FILE = "eval_questions.jsonl"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SplitManifest:
    out_dir: str
    split: str
    seeds: dict[str, int]  # first, last, count
    n_images: int
    n_annotations: int
    n_parts: int
    files: dict[str, str]  # name -> path relative to out_dir
    records: dict[str, int]  # subset -> number of per-image records
    questions: dict[str, int]  # subset -> number of question/answer turns
    eval_questions: int
    config: dict[str, Any]
    seconds: float = field(compare=False)

    def to_json(self) -> dict[str, Any]:
        """The manifest file's content: everything that depends only on seeds, subsets and config."""
        content = dataclasses.asdict(self)
        del content["out_dir"], content["seconds"]
        return content


def image_file_name(seed: int) -> str:
    """``000000000042.png``: no underscore, so the official ``file_name.split('_')[-1]`` keeps it whole."""
    return f"{seed:012d}.png"


def annotation_id(seed: int, object_id: int) -> int:
    """Stable across splits and subsets: the same object always has the same id."""
    return seed * 100 + object_id


def part_id(seed: int, object_id: int, part_index: int) -> int:
    """``part_index`` is the 1-based position of the part in its category's drawing order."""
    return annotation_id(seed, object_id) * 10 + part_index


class _JsonArray:
    """Writes a JSON list one element at a time (``[``, elements joined by ``,``, ``]``)."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._count = 0
        stream.write("[")

    def append(self, item: Any) -> None:
        self._stream.write(("," if self._count else "") + "\n" + _dumps(item))
        self._count += 1

    def close(self) -> int:
        self._stream.write("\n]")
        return self._count


def _dumps(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


class _SceneEncoding:
    """The COCO/Osprey region dicts of one scene, encoded once and shared by every file."""

    def __init__(self, scene: Scene):
        self.scene = scene
        masks: list[np.ndarray] = []
        keys: list[tuple[int, str | None]] = []
        for obj in scene.objects:
            masks.append(obj.mask)
            keys.append((obj.id, None))
            for part in obj.visible_parts:
                masks.append(part.mask)
                keys.append((obj.id, part.name))
        self.encoded = dict(zip(keys, encode_instances(masks)))

    def region_id(self, object_id: int, part: str | None) -> int:
        if part is None:
            return annotation_id(self.scene.seed, object_id)
        names = CATEGORIES[self.scene.object(object_id).category].part_names
        return part_id(self.scene.seed, object_id, names.index(part) + 1)

    def osprey_annotation(self, object_id: int, part: str | None) -> dict[str, Any]:
        """An entry of an official record's ``annotation`` list."""
        enc = self.encoded[(object_id, part)]
        return {
            "bbox": enc["bbox"],
            "segmentation": enc["segmentation"],
            "id": self.region_id(object_id, part),
        }

    def coco_annotations(self) -> list[dict[str, Any]]:
        scene = self.scene
        out = []
        for obj in scene.objects:
            enc = self.encoded[(obj.id, None)]
            parts = []
            for part in obj.visible_parts:
                penc = self.encoded[(obj.id, part.name)]
                parts.append(
                    {
                        "id": self.region_id(obj.id, part.name),
                        "name": part.name,
                        "segmentation": penc["segmentation"],
                        "bbox": penc["bbox"],
                        "area": penc["area"],
                        "colour": part.colour,
                        "texture": part.texture,
                        "visibility": round(part.visibility, 4),
                    }
                )
            out.append(
                {
                    "id": annotation_id(scene.seed, obj.id),
                    "image_id": scene.seed,
                    "category_id": category_id(obj.category),
                    "segmentation": enc["segmentation"],
                    "area": enc["area"],
                    "bbox": enc["bbox"],
                    "iscrowd": 0,
                    "attributes": {
                        "colour": obj.colour,
                        "texture": obj.texture,
                        "size": obj.size,
                        "visibility": round(obj.visibility, 4),
                        "occluded_by": [annotation_id(scene.seed, i) for i in obj.occluded_by],
                        "accent": (
                            {"part": obj.spec.accent_part, "colour": obj.spec.accent_colour}
                            if obj.spec.accent_colour
                            else None
                        ),
                    },
                    "parts": parts,
                }
            )
        return out

    def caption_annotations(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(objects, parts): VG-layout annotations with a short ``caption`` each (answerable parts only)."""
        scene = self.scene

        def annotation(object_id: int, part: str | None, caption: str) -> dict[str, Any]:
            area = self.encoded[(object_id, part)]["area"]
            return {**self.osprey_annotation(object_id, part), "image_id": scene.seed, "area": area,
                    "caption": caption}

        objects = [annotation(obj.id, None, region_caption(scene, obj)) for obj in scene.objects]
        parts = [annotation(obj.id, part.name, part_caption(scene, obj, part))
                 for obj in scene.objects for part in obj.visible_parts if part_answerable(scene, part)]
        return objects, parts

    def image_entry(self) -> dict[str, Any]:
        s = self.scene
        return {"id": s.seed, "file_name": image_file_name(s.seed), "height": s.height, "width": s.width}


def osprey_record(encoding: _SceneEncoding, record: SubsetRecord) -> dict[str, Any]:
    """One official per-image record (§3.2): conversations, or ``description`` for detailed descriptions."""
    out = encoding.image_entry()
    out["annotation"] = [encoding.osprey_annotation(r.object_id, r.part) for r in record.regions]
    if record.subset == "detail_description":
        out["description"] = record.description_lines()
    else:
        out["conversations"] = record.conversations()
    return out


def _eval_lines(encoding: _SceneEncoding, records: dict[str, SubsetRecord]) -> list[dict[str, Any]]:
    image = encoding.image_entry()
    lines = []
    for k, item in enumerate(eval_items(records)):
        lines.append(
            {
                "question_id": f"{image['id']}-{k}",
                "image_id": image["id"],
                "file_name": image["file_name"],
                "height": image["height"],
                "width": image["width"],
                "subset": item.subset,
                "type": item.qtype,
                "question": item.question(),
                "answer": item.answer,
                "annotation": [encoding.osprey_annotation(r.object_id, r.part) for r in item.regions],
                "region_ids": [encoding.region_id(r.object_id, r.part) for r in item.regions],
                "metadata": dict(item.meta),
            }
        )
    return lines


def _coco_header(config: WorldConfig, split: str) -> dict[str, Any]:
    return {
        "info": {
            "description": "Osprey synthetic world (osprey.synthetic)",
            "split": split,
            "config": dataclasses.asdict(config),
        },
        "licenses": [],
        "categories": [
            {
                "id": category_id(name),
                "name": name,
                "supercategory": CATEGORIES[name].group,
                "parts": list(CATEGORIES[name].part_names),
            }
            for name in config.categories
        ],
        "attribute_vocabulary": {
            "colour": list(COLOUR_NAMES),
            "texture": list(TEXTURES),
            "size": list(SIZE_NAMES),
        },
    }


def _seed_summary(seeds: Sequence[int]) -> dict[str, int]:
    return {"first": int(seeds[0]), "last": int(seeds[-1]), "count": len(seeds)}


def scene_caption(scene: Scene) -> str:
    """One sentence naming every object from left to right, e.g. "A picture of a small red rocket and ..."."""
    objects = sorted(scene.objects, key=lambda o: o.centroid[0])
    names = []
    for obj in objects:
        texture = "" if obj.texture == "solid" else f" {obj.texture}"
        names.append(f"a {obj.size} {obj.colour}{texture} {obj.category}")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"A picture of {listed}, from left to right."


def caption_record(scene: Scene, encoding: _SceneEncoding) -> dict[str, Any]:
    entry = encoding.image_entry()
    return {
        "id": entry["id"],
        "image": entry["file_name"],
        "height": entry["height"],
        "width": entry["width"],
        "conversations": [
            {"from": "human", "value": CAPTION_PROMPT},
            {"from": "gpt", "value": scene_caption(scene)},
        ],
    }


def write_split(
    out_dir: str | Path,
    seeds: range | Sequence[int] | Iterable[int],
    config: WorldConfig | None = None,
    subsets: Sequence[str] = ALL_SUBSETS,
    *,
    split: str | None = None,
    progress: bool = False,
) -> SplitManifest:
    """Generate the scenes of ``seeds`` and write images, COCO instances, Osprey files and the benchmark.

    ``split`` ("train"/"test") is checked against the seeds' range; by default it is inferred, and seeds
    mixing the two ranges are refused. ``progress`` shows a tqdm bar.
    """
    start = time.perf_counter()
    config = config or WorldConfig()
    seeds = list(seeds)
    split = check_split_seeds(seeds, split)
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds repeat: every image of a split needs its own seed")
    unknown = [s for s in subsets if s not in ALL_SUBSETS]
    if unknown:
        raise ValueError(f"unknown subsets {unknown}; expected some of {ALL_SUBSETS}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    files = {"images": "images", "instances": INSTANCES_FILE, "captions": CAPTIONS_FILE,
             "vg_objects": VG_OBJECTS_FILE, "vg_parts": VG_PARTS_FILE, "eval_questions": EVAL_FILE}
    files.update({s: f"annotations/{OSPREY_FILES[s]}" for s in subsets if s in OSPREY_FILES})

    streams = {s: open(out / files[s], "w", encoding="utf-8") for s in subsets if s in OSPREY_FILES}  # noqa: SIM115
    arrays = {s: _JsonArray(f) for s, f in streams.items()}
    instances = open(out / INSTANCES_FILE, "w", encoding="utf-8")  # noqa: SIM115
    eval_file = open(out / EVAL_FILE, "w", encoding="utf-8")  # noqa: SIM115
    captions_file = open(out / CAPTIONS_FILE, "w", encoding="utf-8")  # noqa: SIM115
    captions = _JsonArray(captions_file)
    vg_files = {key: open(out / files[key], "w", encoding="utf-8") for key in ("vg_objects", "vg_parts")}  # noqa: SIM115
    for f in vg_files.values():
        f.write('{"annotations":')
    vg_arrays = {key: _JsonArray(f) for key, f in vg_files.items()}
    counts = {s: 0 for s in subsets}
    n_annotations = n_parts = n_eval = 0
    images: list[dict[str, Any]] = []
    try:
        header = _dumps(_coco_header(config, split))
        instances.write(header[:-1] + ',"annotations":')
        coco_annotations = _JsonArray(instances)
        iterator: Iterable[int] = seeds
        if progress:
            from tqdm import tqdm

            iterator = tqdm(seeds, desc=f"synth {split}", unit="img")
        for seed in iterator:
            scene = generate_scene(seed, config)
            Image.fromarray(scene.image).save(
                out / "images" / image_file_name(seed), format="PNG", compress_level=1
            )
            encoding = _SceneEncoding(scene)
            images.append(encoding.image_entry())
            captions.append(caption_record(scene, encoding))
            for key, anns in zip(("vg_objects", "vg_parts"), encoding.caption_annotations()):
                for ann in anns:
                    vg_arrays[key].append(ann)
            for ann in encoding.coco_annotations():
                coco_annotations.append(ann)
                n_annotations += 1
                n_parts += len(ann["parts"])
            records = build_records(scene, tuple(subsets))
            for subset, record in records.items():
                counts[subset] += len(record.turns)
                if subset in arrays and record.regions:
                    arrays[subset].append(osprey_record(encoding, record))
            for line in _eval_lines(encoding, records):
                eval_file.write(_dumps(line) + "\n")
                n_eval += 1
        coco_annotations.close()
        instances.write(',"images":' + _dumps(images) + "}")
        n_records = {s: a.close() for s, a in arrays.items()}
        n_records["captions"] = captions.close()
        for key, array in vg_arrays.items():
            n_records[key] = array.close()
            vg_files[key].write(',"images":' + _dumps(images) + "}")
    finally:
        for f in (*streams.values(), *vg_files.values(), instances, eval_file, captions_file):
            f.close()
    manifest = SplitManifest(
        out_dir=str(out),
        split=split,
        seeds=_seed_summary(seeds),
        n_images=len(seeds),
        n_annotations=n_annotations,
        n_parts=n_parts,
        files=files,
        records={**n_records, **({"category_naming": len(seeds)} if "category_naming" in subsets else {})},
        questions=counts,
        eval_questions=n_eval,
        config=dataclasses.asdict(config),
        seconds=round(time.perf_counter() - start, 3),
    )
    (out / MANIFEST_FILE).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    return manifest
