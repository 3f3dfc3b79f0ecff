"""The scene generator: determinism, masks consistent with the render, occlusion, distractors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from osprey.synthetic import WorldConfig, generate_scene, render
from osprey.synthetic.raster import rasterise_parts
from osprey.synthetic.vocabulary import CATEGORIES


def _footprint(obj, size: int) -> np.ndarray:
    """(H, W) bool: the object's full silhouette before anything was drawn over it."""
    spec = obj.spec
    full = np.zeros((size, size), dtype=bool)
    full[spec.y0 : spec.y0 + spec.height, spec.x0 : spec.x0 + spec.width] = rasterise_parts(spec) > 0
    return full


def test_same_seed_gives_identical_scene():
    a, b = generate_scene(7), generate_scene(7)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.instance_map.tobytes() == b.instance_map.tobytes()
    assert a.specs == b.specs
    for oa, ob in zip(a.objects, b.objects):
        for pa, pb in zip(oa.parts, ob.parts):
            assert np.array_equal(pa.mask, pb.mask)


def test_different_seeds_give_different_scenes():
    images = {generate_scene(seed).image.tobytes() for seed in range(10)}
    assert len(images) == 10


def test_render_reproduces_the_scene_image(scenes):
    for scene in scenes[:10]:
        assert np.array_equal(render(scene), scene.image)
        assert scene.image.dtype == np.uint8 and scene.image.shape == (256, 256, 3)


def test_object_and_part_masks_are_consistent(scenes):
    for scene in scenes:
        assert scene.config.min_objects <= len(scene.objects) <= scene.config.max_objects
        for obj in scene.objects:
            assert obj.mask.any(), f"seed {scene.seed}: object {obj.id} has an empty mask"
            assert np.array_equal(obj.mask, scene.instance_map == obj.id)
            assert obj.area == int(obj.mask.sum())
            assert obj.visibility >= scene.config.min_visibility
            key_part = max(obj.parts, key=lambda p: p.full_area)
            assert key_part.visibility >= 0.5, "the silhouette's largest part stays mostly visible"
            assert [p.name for p in obj.parts] == list(CATEGORIES[obj.category].part_names)
            union = np.zeros_like(obj.mask)
            for part in obj.parts:
                assert not (part.mask & ~obj.mask).any(), "a part leaks outside its object"
                assert not (part.mask & union).any(), "two parts share a pixel"
                assert part.area == int(part.mask.sum())
                union |= part.mask
            assert np.array_equal(union, obj.mask), "the parts do not cover the object"
            x, y, w, h = obj.bbox
            ys, xs = np.nonzero(obj.mask)
            assert (x, y, w, h) == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_occluded_objects_exclude_their_occluders(scenes):
    occluded = 0
    for scene in scenes:
        size = scene.config.image_size
        for obj in scene.objects:
            full = _footprint(obj, size)
            assert not (obj.mask & ~full).any()
            hidden = full & ~obj.mask
            assert bool(hidden.any()) == bool(obj.occluded_by)
            for other_id in obj.occluded_by:
                assert other_id > obj.id, "only later objects are drawn on top"
                occluder = _footprint(scene.object(other_id), size)
                assert (occluder & full).any()
                assert not (occluder & obj.mask).any(), "visible mask includes the occluder's pixels"
            occluded += bool(obj.occluded_by)
    assert occluded >= 10, "the world should hide parts of some objects"


def test_background_is_plain_outside_the_objects(scenes):
    for scene in scenes[:10]:
        outside = scene.instance_map == 0
        diff = np.abs(scene.image[outside].astype(int) - np.array(scene.background))
        assert diff.max() <= scene.config.noise_amplitude


def test_scenes_have_distractors_and_variety(scenes):
    same_colour = same_category = 0
    sizes, textures, accents = set(), set(), 0
    for scene in scenes:
        colours = [o.colour for o in scene.objects]
        categories = [o.category for o in scene.objects]
        same_colour += len(set(colours)) < len(colours)
        same_category += len(set(categories)) < len(categories)
        assert len(set(colours)) >= 2 or len(scene.objects) < 2
        sizes |= {o.size for o in scene.objects}
        textures |= {o.texture for o in scene.objects}
        accents += sum(o.spec.accent_colour is not None for o in scene.objects)
    assert same_colour >= 0.7 * len(scenes)
    assert same_category >= 0.7 * len(scenes)
    assert sizes == {"small", "medium", "large"}
    assert textures == {"solid", "striped", "dotted"}
    assert accents > 0


def test_config_is_validated():
    with pytest.raises(ValueError, match="categories"):
        WorldConfig(categories=("lamp", "dragon"))
    with pytest.raises(ValueError, match="objects"):
        WorldConfig(min_objects=5, max_objects=2)
    with pytest.raises(ValueError, match="seed"):
        generate_scene(-1)


def test_other_sizes_and_vocabularies():
    config = WorldConfig(image_size=128, categories=("lamp", "car", "mug"), colours=("red", "blue"))
    scene = generate_scene(3, config)
    assert scene.image.shape == (128, 128, 3)
    assert {o.category for o in scene.objects} <= {"lamp", "car", "mug"}
    assert {o.colour for o in scene.objects} <= {"red", "blue"}


def test_scenes_do_not_depend_on_the_process():
    """String hashing is salted per process; the layout stream must not depend on it."""
    code = (
        "import osprey, hashlib\n"
        "from osprey.synthetic import generate_scene\n"
        "print(hashlib.sha256(b''.join(generate_scene(s).image.tobytes() for s in range(5))).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = hashlib.sha256(b"".join(generate_scene(s).image.tobytes() for s in range(5))).hexdigest()
    assert out.stdout.strip() == here
