"""Round trip: synthetic world -> official JSON files -> ``osprey.data.parsers`` -> the same samples."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from osprey.synthetic import build_records
from osprey.synthetic.writer import OSPREY_FILES, annotation_id

parsers = pytest.importorskip("osprey.data.parsers")

# Our subset name -> the parser registered for its official file.
PARSER_OF = {subset: Path(name).stem for subset, name in OSPREY_FILES.items()}


def _parse_file(manifest, subset: str, parser_name: str):
    parser = parsers.PARSERS[parser_name]
    records = parser.load(Path(manifest.out_dir) / manifest.files[subset])
    report = parsers.parse_records(parser, records, rng=random.Random(0))
    assert not report.errors, report.errors[:3]
    return report.samples


@pytest.mark.parametrize("subset", sorted(OSPREY_FILES))
def test_osprey_files_parse_back_to_the_same_samples(written_split, subset):
    manifest, scenes = written_split
    samples = _parse_file(manifest, subset, PARSER_OF[subset])
    assert len(samples) == len(scenes)
    image_dir = Path(manifest.out_dir) / "images"
    for sample, (seed, scene) in zip(samples, scenes.items()):
        record = build_records(scene, [subset])[subset]
        assert sample.image.path == f"{seed:012d}.png" and (image_dir / sample.image.path).exists()
        assert (sample.image.height, sample.image.width) == (scene.height, scene.width)
        decoded = sample.decode_masks()
        assert len(decoded) == len(record.regions)
        for mask, ref in zip(decoded, record.regions):
            assert np.array_equal(mask, ref.mask(scene))
        user = [t.text for t in sample.turns if t.role == "user"]
        answers = [t.text for t in sample.turns if t.role == "assistant"]
        if subset == "detail_description":
            assert answers == list(record.descriptions)
            continue
        assert answers == [item.answer for item in record.turns]
        numbering = record.numbering()
        for text, item in zip(user, record.turns):
            question = item.question(numbering)
            if subset != "positive_negative":  # the official loader strips "<" and ">" there
                question = question.replace("<", "").replace(">", "")
            assert question in text


def test_coco_instances_parse_back_to_category_names(written_split):
    manifest, scenes = written_split
    samples = _parse_file(manifest, "instances", "coco_instances")
    assert len(samples) == len(scenes)
    for sample, (seed, scene) in zip(samples, scenes.items()):
        by_id = {annotation_id(seed, o.id): o for o in scene.objects}
        objects = [by_id[i] for i in sample.meta["annotation_ids"]]
        answers = [t.text for t in sample.turns if t.role == "assistant"]
        assert answers == [o.category for o in objects]
        for mask, obj in zip(sample.decode_masks(), objects):
            assert np.array_equal(mask, obj.mask)
