"""Every gold answer can be read off the region's own pixels and mask geometry."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from osprey.synthetic import build_records, eval_items
from osprey.synthetic.vocabulary import CATEGORIES, COLOURS, MARKING_DARKNESS, SIZES

_NAMES = list(COLOURS)
# Each palette colour and its darker marking shade; a pixel is classified by the nearest of the 16.
_CENTRES = np.array(
    list(COLOURS.values()) + [[c * MARKING_DARKNESS for c in rgb] for rgb in COLOURS.values()]
)


def _classify(pixels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(colour name per pixel, True where the pixel is a darker marking shade)."""
    d = ((pixels[:, None, :].astype(float) - _CENTRES[None]) ** 2).sum(-1)
    idx = d.argmin(1)
    return [_NAMES[i % len(_NAMES)] for i in idx], idx >= len(_NAMES)


def _dominant_colour(scene, mask: np.ndarray) -> str:
    names, _ = _classify(scene.image[mask])
    return Counter(names).most_common(1)[0][0]


def _marked_share(scene, mask: np.ndarray) -> float:
    _, dark = _classify(scene.image[mask])
    return float(dark.mean())


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def _items(scenes):
    for scene in scenes:
        for item in eval_items(build_records(scene)):
            yield scene, item


def test_colour_answers_are_the_dominant_colour_of_the_mask(scenes):
    checked = 0
    for scene, item in _items(scenes):
        if item.qtype in ("colour", "part_colour"):
            assert _dominant_colour(scene, item.regions[0].mask(scene)) == item.answer, (scene.seed, item)
            checked += 1
    assert checked > 100


def test_texture_answers_show_in_the_pixels(scenes):
    checked = 0
    for scene, item in _items(scenes):
        if item.qtype in ("texture", "part_texture"):
            share = _marked_share(scene, item.regions[0].mask(scene))
            if item.answer == "solid":
                assert share < 0.02, (scene.seed, item, share)
            else:
                assert share > 0.08, (scene.seed, item, share)
            checked += 1
    assert checked > 100


def test_relation_answers_match_mask_centroids_and_areas(scenes):
    seen = Counter()
    for scene, item in _items(scenes):
        if not item.qtype.startswith("relation_"):
            continue
        a, b = (r.mask(scene) for r in item.regions)
        (ax, ay), (bx, by) = _centroid(a), _centroid(b)
        margin = 0.08 * scene.width
        if item.qtype == "relation_horizontal":
            assert abs(ax - bx) >= margin - 1
            assert item.answer == ("left" if ax < bx else "right")
        elif item.qtype == "relation_vertical":
            assert abs(ay - by) >= margin - 1
            assert item.answer == ("above" if ay < by else "below")
        else:
            ratio = a.sum() / b.sum()
            assert item.answer == ("larger" if ratio > 1 else "smaller")
            assert ratio >= 1.5 or ratio <= 1 / 1.5
        seen[item.qtype, item.answer] += 1
    assert len(seen) == 6, f"every relation answer should occur: {seen}"


def test_size_and_position_answers_match_the_mask(scenes):
    for scene, item in _items(scenes):
        mask = item.regions[0].mask(scene)
        ys, xs = np.nonzero(mask)
        if item.qtype == "size":
            longest = max(np.ptp(xs) + 1, np.ptp(ys) + 1) / scene.width
            lo, hi = SIZES[item.answer]
            assert lo - 0.011 <= longest <= hi + 0.011
        elif item.qtype == "position":
            cx, cy = (xs.mean() + 0.5) / scene.width, (ys.mean() + 0.5) / scene.height
            words = item.answer.split()
            column = "left" if cx < 1 / 3 else "right" if cx >= 2 / 3 else "center"
            row = "top" if cy < 1 / 3 else "bottom" if cy >= 2 / 3 else "middle"
            expected = {row, column} - {"middle", "center"} or {"center"}
            assert set(words) == expected


def test_category_and_part_answers(scenes):
    for scene, item in _items(scenes):
        ref = item.regions[0]
        obj = scene.object(ref.object_id)
        assert ref.mask(scene).any()
        if item.qtype in ("category", "category_naming", "part_object"):
            assert item.answer == obj.category
        elif item.qtype == "part_name":
            assert item.answer == ref.part
            assert item.answer in CATEGORIES[obj.category].part_names
            assert f"the {obj.category} " in item.template
            part = obj.part(ref.part)
            assert part.visibility >= 0.5
            assert not (part.mask & ~obj.mask).any()


def test_positive_negative_answers(scenes):
    sources, answers = Counter(), Counter()
    for scene, item in _items(scenes):
        if item.qtype != "pos_neg":
            continue
        obj = scene.object(item.regions[0].object_id)
        asked = item.meta["asked_category"]
        assert re.search(rf"\b{asked}\?$", item.template)
        assert asked in scene.config.categories
        assert item.answer == ("Yes" if asked == obj.category else "No")
        answers[item.answer] += 1
        sources[item.meta["negative_source"]] += 1
    assert answers["Yes"] > 30 and answers["No"] > 30
    assert sources["in_image"] > 0 and sources["confusable"] > 0


def test_metadata_flags_distractors(scenes):
    for scene, item in _items(scenes):
        meta = item.meta
        obj = scene.object(item.regions[0].object_id)
        others = [o for o in scene.objects if o.id != obj.id]
        assert meta["same_category_distractor"] == any(o.category == obj.category for o in others)
        if item.regions[0].part is None:
            assert meta["same_colour_distractor"] == any(o.colour == obj.colour for o in others)
            assert meta["region_area"] == obj.area
        assert 0 < meta["area_fraction"] < 1


def test_descriptions_mention_the_attributes(scenes):
    for scene in scenes[:10]:
        record = build_records(scene, ["detail_description"])["detail_description"]
        for ref, text in zip(record.regions, record.descriptions):
            obj = scene.object(ref.object_id)
            assert text.startswith(f"A {obj.size} {obj.colour} {obj.category}") or text.startswith(
                f"An {obj.size} {obj.colour} {obj.category}"
            )
            if obj.occluded_by:
                assert "partly hidden behind" in text


def test_conversations_refer_to_their_regions(scenes):
    for scene in scenes[:10]:
        record = build_records(scene, ["conversation"])["conversation"]
        assert 2 <= len(record.regions) <= 3
        text = " ".join(t["value"] for t in record.conversations())
        for k in range(1, len(record.regions) + 1):
            assert f"<region{k}>" in text
        first = scene.object(record.regions[0].object_id)
        assert first.category in record.turns[0].answer and first.colour in record.turns[0].answer
