"""Written splits: the official layouts, mask round trips, determinism, seed ranges, speed, CLI."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import osprey.synthetic as synth
from osprey.synthetic import (
    OSPREY_FILES,
    WorldConfig,
    build_records,
    held_out_seed,
    split_of_seed,
    templates,
    train_seeds,
    write_split,
)
from osprey.synthetic.cli import add_synthetic_subcommand, main
from osprey.synthetic.seeds import TEST_SEED_OFFSET, check_split_seeds

REGION_RE = re.compile(r"<region(\d+)>")


def _load(manifest, name: str):
    return json.loads((Path(manifest.out_dir) / manifest.files[name]).read_text())


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"]}).astype(bool)


def _check_annotation(ann: dict, height: int, width: int) -> None:
    assert isinstance(ann["bbox"], list) and len(ann["bbox"]) == 4
    assert all(isinstance(v, float) for v in ann["bbox"])
    seg = ann["segmentation"]
    assert (
        set(seg) == {"size", "counts"} and seg["size"] == [height, width] and isinstance(seg["counts"], str)
    )


def test_manifest_and_files(written_split):
    manifest, scenes = written_split
    out = Path(manifest.out_dir)
    assert manifest.split == "train" and manifest.n_images == len(scenes)
    for name, rel in manifest.files.items():
        assert (out / rel).exists(), name
    assert {Path(p).name for p in manifest.files.values()} >= set(OSPREY_FILES.values())
    assert json.loads((out / "manifest.json").read_text())["n_annotations"] == manifest.n_annotations
    for seed, scene in scenes.items():
        image = np.asarray(Image.open(out / "images" / f"{seed:012d}.png"))
        assert np.array_equal(image, scene.image)


@pytest.mark.parametrize("subset", sorted(OSPREY_FILES))
def test_official_record_layout(written_split, subset):
    manifest, scenes = written_split
    records = _load(manifest, subset)
    assert isinstance(records, list) and len(records) == len(scenes)
    text_key = "description" if subset == "detail_description" else "conversations"
    for record in records:
        assert set(record) == {"id", "file_name", "height", "width", "annotation", text_key}
        assert isinstance(record["id"], int) and record["file_name"] == f"{record['id']:012d}.png"
        assert "_" not in record["file_name"]
        n = len(record["annotation"])
        assert n >= 1
        for ann in record["annotation"]:
            _check_annotation(ann, record["height"], record["width"])
        if subset == "detail_description":
            assert len(record["description"]) == n
            for k, line in enumerate(record["description"], start=1):
                assert line.startswith(f"<region{k}>: ") and len(line) > 20
            continue
        turns = record["conversations"]
        assert len(turns) >= 2 and len(turns) % 2 == 0
        mentions = []
        for i, turn in enumerate(turns):
            assert set(turn) == {"from", "value"} and isinstance(turn["value"], str) and turn["value"]
            assert turn["from"] == ("human" if i % 2 == 0 else "gpt")
            found = [int(k) for k in REGION_RE.findall(turn["value"])]
            assert i % 2 == 0 or not found, "answers never use region tags"
            mentions += found
        assert set(mentions) == set(range(1, n + 1)), "every annotation is referred to, and only those"
        if subset == "positive_negative":
            assert mentions == list(range(1, n + 1)), (
                "the official loader binds the i-th mention to the i-th mask"
            )


def test_osprey_annotations_decode_to_the_scene_masks(written_split):
    manifest, scenes = written_split
    for subset in OSPREY_FILES:
        for record in _load(manifest, subset):
            scene = scenes[record["id"]]
            built = build_records(scene, [subset])[subset]
            assert len(built.regions) == len(record["annotation"])
            for ref, ann in zip(built.regions, record["annotation"]):
                assert np.array_equal(_decode(ann["segmentation"]), ref.mask(scene))


def test_coco_round_trip_through_pycocotools(written_split):
    manifest, scenes = written_split
    coco = _load(manifest, "instances")
    assert {c["name"] for c in coco["categories"]} == set(WorldConfig().categories)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert [img["id"] for img in coco["images"]] == list(scenes)
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids)) == manifest.n_annotations
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for seed, scene in scenes.items():
        anns = by_image[seed]
        assert len(anns) == len(scene.objects)
        for obj, ann in zip(scene.objects, anns):
            mask = _decode(ann["segmentation"])
            assert np.array_equal(mask, obj.mask)
            assert ann["area"] == obj.area and ann["bbox"] == [float(v) for v in obj.bbox]
            assert names[ann["category_id"]] == obj.category and ann["iscrowd"] == 0
            attrs = ann["attributes"]
            assert (attrs["colour"], attrs["texture"], attrs["size"]) == (obj.colour, obj.texture, obj.size)
            assert [p["name"] for p in ann["parts"]] == [p.name for p in obj.visible_parts]
            for part_ann, part in zip(ann["parts"], obj.visible_parts):
                assert np.array_equal(_decode(part_ann["segmentation"]), part.mask)
                assert part_ann["colour"] == part.colour


def test_eval_questions_file(written_split):
    manifest, scenes = written_split
    lines = (Path(manifest.out_dir) / manifest.files["eval_questions"]).read_text().splitlines()
    assert len(lines) == manifest.eval_questions > 0
    types = set()
    for line in lines[::7]:
        q = json.loads(line)
        scene = scenes[q["image_id"]]
        n = len(q["annotation"])
        assert [int(k) for k in REGION_RE.findall(q["question"])] == list(range(1, n + 1))
        assert len(q["region_ids"]) == n and q["answer"]
        meta = q["metadata"]
        for key in (
            "same_colour_distractor",
            "same_category_distractor",
            "region_area",
            "visibility",
            "size",
        ):
            assert key in meta
        obj_mask = scene.object(meta["object_id"]).mask
        region = _decode(q["annotation"][0]["segmentation"])
        assert not (region & ~obj_mask).any()
        types.add(q["type"])
    assert {"category", "colour", "part_name", "pos_neg"} <= types


def test_same_seeds_write_identical_bytes(tmp_path):
    seeds = train_seeds(4, start=50)
    write_split(tmp_path / "a", seeds)
    write_split(tmp_path / "b", seeds)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) >= 12
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_a_subset_alone_is_written_as_in_the_full_split(tmp_path, written_split):
    manifest, scenes = written_split
    alone = write_split(tmp_path, list(scenes), subsets=["short_form"])
    assert set(alone.files) == {"images", "instances", "captions", "vg_objects", "vg_parts", "eval_questions",
                                "short_form"}
    assert _load(alone, "short_form") == _load(manifest, "short_form")
    assert _load(alone, "instances") == _load(manifest, "instances")


def test_train_and_test_seeds_never_overlap():
    train = train_seeds(1000, start=0)
    test = synth.test_seeds(1000, start=0)
    assert set(train).isdisjoint(test)
    assert max(train_seeds(10, start=10**9 - 10)) < min(synth.test_seeds(10))
    assert held_out_seed(5) == TEST_SEED_OFFSET + 5 and split_of_seed(held_out_seed(5)) == "test"
    with pytest.raises(ValueError):
        train_seeds(10, start=10**9 - 5)  # would run into the test range
    with pytest.raises(ValueError):
        check_split_seeds([1, held_out_seed(1)])
    with pytest.raises(ValueError):
        check_split_seeds(train_seeds(3), "test")


def test_write_split_refuses_mixed_or_mislabelled_seeds(tmp_path):
    with pytest.raises(ValueError, match="mix"):
        write_split(tmp_path, [0, held_out_seed(0)])
    with pytest.raises(ValueError, match="range"):
        write_split(tmp_path, synth.test_seeds(2), split="train")


def test_fifty_images_write_quickly(tmp_path):
    start = time.perf_counter()
    manifest = write_split(tmp_path, train_seeds(50, start=1000))
    elapsed = time.perf_counter() - start
    assert manifest.n_images == 50
    assert elapsed < 10.0, f"50 images took {elapsed:.1f} s"


def test_cli_writes_a_test_split(tmp_path, capsys):
    options = ["--images", "3", "--seed", "7", "--split", "test", "--size", "128", "--no-progress"]
    argv = [str(tmp_path), *options]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["split"] == "test" and summary["seeds"]["first"] == held_out_seed(7)
    coco = json.loads((tmp_path / "annotations" / "instances.json").read_text())
    assert all(img["id"] >= TEST_SEED_OFFSET and img["height"] == 128 for img in coco["images"])


def test_cli_registers_as_a_subcommand():
    parser = argparse.ArgumentParser(prog="osprey data")
    add_synthetic_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "out", "--images", "5", "--seed", "3"])
    assert (args.out_dir, args.images, args.seed, args.split, args.size) == ("out", 5, 3, "train", 256)
    assert callable(args.func)


def test_templates_mention_their_regions_in_order():
    groups = [templates.SHORT_FORM, templates.PART_LEVEL, templates.CONVERSATION, templates.HELDOUT]
    wordings = [t for g in groups for ts in g.values() for t in ts] + list(templates.POSITIVE_NEGATIVE)
    for template in wordings:
        slots = [int(k) for k in re.findall(r"\{(\d)\}", template)]
        assert slots == sorted(slots), template


def test_region_captions_are_vg_layout_and_name_what_the_region_shows(written_split):
    """Stage-2 region captions: every object and answerable part once, read back by the ``vg`` parser,
    the caption naming the object's size, colour and category (a part's name, colour and object)."""
    import random

    from osprey.data.parsers import get_parser
    from osprey.synthetic.facts import part_answerable
    from osprey.synthetic.vocabulary import CATEGORIES
    from osprey.synthetic.writer import annotation_id, part_id

    manifest, scenes = written_split
    root = Path(manifest.out_dir)
    objects = json.loads((root / manifest.files["vg_objects"]).read_text())
    parts = json.loads((root / manifest.files["vg_parts"]).read_text())
    by_id = {a["id"]: a["caption"] for a in objects["annotations"]}
    part_captions = {a["id"]: a["caption"] for a in parts["annotations"]}
    for seed, scene in scenes.items():
        for obj in scene.objects:
            caption = by_id[annotation_id(seed, obj.id)]
            assert caption.split()[1:3] == [obj.size, obj.colour] and obj.category in caption.split()
            for part in obj.visible_parts:
                names = CATEGORIES[obj.category].part_names
                pid = part_id(seed, obj.id, names.index(part.name) + 1)
                assert (pid in part_captions) == part_answerable(scene, part)
                if pid in part_captions:
                    assert part_captions[pid].startswith(f"the {part.colour}")
                    assert part_captions[pid].endswith(f"{part.name} of {'an' if obj.category[0] in 'aeiou' else 'a'} {obj.category}")
    parser = get_parser("vg")
    records = parser.load(root / manifest.files["vg_objects"], image_root=root / "images")
    sample = parser.parse(records[0], rng=random.Random(0), index=0)[0]
    assert sample.turns[1].text in by_id.values()
