"""What can be read off a region's pixels: the answer rules of the synthetic world.

Each function returns the answer or ``None`` when the pixels would not settle it (a colour hidden under
an accent part, a centroid right on a grid line, two objects of nearly equal area, ...). Question
generators only ask what these functions answer, so every gold answer is derivable from the region's own
mask, its pixels in the render, and mask geometry (centroids, areas, boxes).
"""

from __future__ import annotations

from typing import Any

from osprey.synthetic.vocabulary import SIZES
from osprey.synthetic.world import Scene, SceneObject, ScenePart

__all__ = [
    "LARGER_RATIO",
    "POSITION_MARGIN",
    "RELATION_MARGIN",
    "colour_answer",
    "horizontal_relation",
    "noun_phrase",
    "object_meta",
    "part_answerable",
    "part_meta",
    "part_texture_answer",
    "position_answer",
    "position_words",
    "size_answer",
    "size_relation",
    "texture_answer",
    "vertical_relation",
]

MIN_COLOUR_SHARE = 0.6  # the object's colour must cover this much of its visible pixels
POSITION_MARGIN = 0.04  # centroid distance from the 1/3 and 2/3 grid lines (fraction of the image side)
RELATION_MARGIN = 0.08  # centroid difference for left/right and above/below (fraction of the image side)
LARGER_RATIO = 1.5  # visible-area ratio for larger/smaller
SIZE_SLACK = 0.01  # the visible box may be this much outside the size band (rounding)
MIN_PART_VISIBILITY = 0.5
MIN_PART_AREA_FRACTION = 0.0006  # of the image: 39 px at 256, 10 px at 128
MIN_MARKED_SHARE = 0.1  # a textured region must show at least this share of marked pixels


def _texture_min_area(scene: Scene) -> int:
    return 2 * scene.config.texture_period**2


def colour_answer(obj: SceneObject) -> str | None:
    return obj.colour if obj.colour_share >= MIN_COLOUR_SHARE else None


def texture_answer(scene: Scene, obj: SceneObject) -> str | None:
    if obj.area < _texture_min_area(scene) or obj.colour_share < MIN_COLOUR_SHARE:
        return None
    if obj.texture != "solid" and obj.marked_pixels < MIN_MARKED_SHARE * obj.area:
        return None
    return obj.texture


def size_answer(scene: Scene, obj: SceneObject) -> str | None:
    """The size class, if the visible box still lies in the class's band (occlusion can shrink it)."""
    lo, hi = SIZES[obj.size]
    longest = max(obj.bbox[2], obj.bbox[3]) / scene.width
    return obj.size if lo - SIZE_SLACK <= longest <= hi + SIZE_SLACK else None


def position_words(scene: Scene, obj: SceneObject) -> tuple[str, str]:
    """(row, column) of the centroid on a 3x3 grid: top/middle/bottom, left/center/right."""
    cx, cy = obj.centroid[0] / scene.width, obj.centroid[1] / scene.height
    column = "left" if cx < 1 / 3 else "right" if cx >= 2 / 3 else "center"
    row = "top" if cy < 1 / 3 else "bottom" if cy >= 2 / 3 else "middle"
    return row, column


def position_answer(scene: Scene, obj: SceneObject, *, margin: float = POSITION_MARGIN) -> str | None:
    """Grid cell of the centroid ("top left", "top", "left", "center", ...); None near a grid line."""
    cx, cy = obj.centroid[0] / scene.width, obj.centroid[1] / scene.height
    if any(abs(v - line) < margin for v in (cx, cy) for line in (1 / 3, 2 / 3)):
        return None
    row, column = position_words(scene, obj)
    if row == "middle" and column == "center":
        return "center"
    if row == "middle":
        return column
    if column == "center":
        return row
    return f"{row} {column}"


def horizontal_relation(scene: Scene, a: SceneObject, b: SceneObject) -> str | None:
    """Where a's centroid is relative to b's ("left" / "right"), if clearly apart."""
    dx = a.centroid[0] - b.centroid[0]
    if abs(dx) < RELATION_MARGIN * scene.width:
        return None
    return "left" if dx < 0 else "right"


def vertical_relation(scene: Scene, a: SceneObject, b: SceneObject) -> str | None:
    dy = a.centroid[1] - b.centroid[1]
    if abs(dy) < RELATION_MARGIN * scene.height:
        return None
    return "above" if dy < 0 else "below"


def size_relation(a: SceneObject, b: SceneObject) -> str | None:
    """Whether a is "larger" or "smaller" than b by visible area, if the ratio is clear."""
    if a.area >= LARGER_RATIO * b.area:
        return "larger"
    if b.area >= LARGER_RATIO * a.area:
        return "smaller"
    return None


def part_answerable(scene: Scene, part: ScenePart) -> bool:
    """A part is asked about only when most of it is visible and it is not a sliver."""
    return (
        part.visibility >= MIN_PART_VISIBILITY
        and part.area >= MIN_PART_AREA_FRACTION * scene.width * scene.height
    )


def part_texture_answer(scene: Scene, part: ScenePart) -> str | None:
    if part.area < _texture_min_area(scene):
        return None
    if part.texture != "solid" and part.marked_pixels < MIN_MARKED_SHARE * part.area:
        return None
    return part.texture


def noun_phrase(scene: Scene, obj: SceneObject) -> str | None:
    """A phrase such as "the red lamp" (or "the small red lamp") naming only this object, else None."""
    others = [o for o in scene.objects if o.id != obj.id]
    if not any(o.colour == obj.colour and o.category == obj.category for o in others):
        return f"the {obj.colour} {obj.category}"
    if not any(o.colour == obj.colour and o.category == obj.category and o.size == obj.size for o in others):
        return f"the {obj.size} {obj.colour} {obj.category}"
    return None


def object_meta(scene: Scene, obj: SceneObject) -> dict[str, Any]:
    """Evaluation metadata of an object region: attributes, distractors, area, occlusion."""
    others = [o for o in scene.objects if o.id != obj.id]
    return {
        "object_id": obj.id,
        "category": obj.category,
        "colour": obj.colour,
        "texture": obj.texture,
        "size": obj.size,
        "same_colour_distractor": any(o.colour == obj.colour for o in others),
        "same_category_distractor": any(o.category == obj.category for o in others),
        "region_area": obj.area,
        "area_fraction": round(obj.area / (scene.width * scene.height), 5),
        "visibility": round(obj.visibility, 4),
        "occluded": bool(obj.occluded_by),
    }


def part_meta(scene: Scene, obj: SceneObject, part: ScenePart) -> dict[str, Any]:
    """Metadata of a part region; distractors are the same part name or colour on other objects."""
    others = [o for o in scene.objects if o.id != obj.id]
    return {
        **object_meta(scene, obj),
        "part": part.name,
        "part_colour": part.colour,
        "part_texture": part.texture,
        "same_colour_distractor": any(
            p.colour == part.colour and p.area > 0 for o in scene.objects for p in o.parts if p is not part
        ),
        "same_category_distractor": any(o.category == obj.category for o in others),
        "region_area": part.area,
        "area_fraction": round(part.area / (scene.width * scene.height), 5),
        "visibility": round(part.visibility, 4),
    }
