"""The parts of ``osprey label`` that need no model: reading the three inputs, the shard split, the
durable shard file (torn tail cut, done set, settings guard) and the merge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from osprey.label.output import ShardWriter, complete_lines, done_regions, drop_torn_tail, merge, shard_path
from osprey.label.sources import LabelError, rank_and_world, read_source, shard
from osprey.masks import encode_rle


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """images/ and annotations/ as ``osprey data synth`` lays them out: 3 images, 2 regions each."""
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    images, annotations, records = [], [], []
    for n in range(3):
        name = f"{n:012d}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * n, np.uint8)).save(tmp_path / "images" / name)
        images.append({"id": n, "file_name": name, "height": 20, "width": 30})
        anns = []
        for k in range(2):
            mask = np.zeros((20, 30), bool)
            mask[2 + k * 8: 8 + k * 8, 3:20] = True
            anns.append({"id": 10 * n + k, "image_id": n, "category_id": 1, "segmentation": encode_rle(mask)})
        annotations += anns
        records.append({"id": str(n), "file_name": f"COCO_train2014_{name}", "height": "20", "width": "30",
                        "annotation": [{"bbox": [0, 0, 1, 1], "segmentation": a["segmentation"]} for a in anns]})
    (tmp_path / "annotations/instances.json").write_text(json.dumps(
        {"images": images[::-1], "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    (tmp_path / "annotations/osprey.json").write_text(json.dumps(records))
    return tmp_path


def test_the_three_inputs_give_the_same_images_in_path_order(dataset: Path) -> None:
    coco = read_source(dataset / "annotations/instances.json")  # images/ beside annotations/ by default
    osprey = read_source(dataset / "annotations/osprey.json")  # COCO_train2014_ prefix stripped, as officially
    folder = read_source(dataset / "images")
    assert (coco.kind, osprey.kind, folder.kind) == ("coco", "osprey", "folder")
    names = [f"{n:012d}.png" for n in range(3)]
    for source in (coco, osprey, folder):
        assert [i.image for i in source.items] == names
    assert [r.id for r in coco.items[1].regions] == [10, 11]
    assert [r.id for r in osprey.items[1].regions] == [1, 2]
    assert folder.items[0].regions is None  # segmented at labelling time
    a, b = coco.items[2].regions[1].decode(), osprey.items[2].regions[1].decode()
    assert a.shape == (20, 30) and a.sum() == 6 * 17 and np.array_equal(a, b)


def test_bad_inputs_are_named(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="neither a folder"):
        read_source(tmp_path / "nothing.json")
    with pytest.raises(LabelError, match="image folder"):
        read_source(dataset / "annotations/instances.json", images=tmp_path / "no-images")
    (dataset / "annotations/odd.json").write_text('{"x": 1}')
    with pytest.raises(LabelError, match="neither a COCO"):
        read_source(dataset / "annotations/odd.json")
    (dataset / "images/000000000001.png").unlink()
    with pytest.raises(LabelError, match="is not in"):
        read_source(dataset / "annotations/instances.json")


def test_shards_are_disjoint_cover_everything_and_depend_only_on_rank_and_world(monkeypatch) -> None:
    items = list(range(9))  # 9 images in key order
    parts = [shard(items, r, 4) for r in range(4)]
    assert sorted(i for p in parts for i in p) == items
    assert [len(p) for p in parts] == [3, 2, 2, 2]
    assert shard(items, 1, 4) == parts[1]
    with pytest.raises(LabelError):
        shard(items, 4, 4)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rank_and_world() == (1, 2)


def _line(image: str, index: int, **extra) -> dict:
    return {"image": image, "index": index, "region": index + 1, "regions_in_image": 2, "model": "m", **extra}


def test_a_torn_last_line_is_cut_and_whole_lines_are_done(tmp_path: Path) -> None:
    path = shard_path(tmp_path, 0)
    with ShardWriter(path) as writer:
        writer.write([_line("a.png", 0), _line("a.png", 1)])
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"image": "b.png", "ind')  # what a SIGKILL inside write() can leave
    assert [r["index"] for r in complete_lines(path)] == [0, 1]  # readers ignore the torn tail
    assert done_regions(tmp_path, {"model": "m"}) == {("a.png", 0): 2, ("a.png", 1): 2}
    with ShardWriter(path) as writer:  # a restarted rank cuts it before appending
        assert writer.dropped == len(b'{"image": "b.png", "ind')
        writer.write([_line("b.png", 0)])
    assert path.read_bytes().startswith(whole) and len(list(complete_lines(path))) == 3
    assert drop_torn_tail(path) == 0
    with pytest.raises(LabelError, match="other settings"):
        done_regions(tmp_path, {"model": "another"})


def test_merge_sorts_by_image_and_index_and_drops_duplicates(tmp_path: Path) -> None:
    with ShardWriter(shard_path(tmp_path, 1)) as w:
        w.write([_line("b.png", 1), _line("b.png", 0)])
    with ShardWriter(shard_path(tmp_path, 0)) as w:
        w.write([_line("a.png", 1), _line("c.png", 0), _line("a.png", 0)])
        w.write([_line("c.png", 0)])
    path, lines, duplicates = merge(tmp_path)
    assert (path.name, lines, duplicates) == ("labels.jsonl", 5, 1)
    keys = [(r["image"], r["index"]) for r in complete_lines(path)]
    assert keys == [("a.png", 0), ("a.png", 1), ("b.png", 0), ("b.png", 1), ("c.png", 0)]
    assert done_regions(tmp_path, {"model": "m"}).keys() == set(keys)  # the merged file is not a shard
    with pytest.raises(LabelError, match="nothing to merge"):
        merge(tmp_path / "empty")
