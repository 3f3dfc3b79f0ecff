"""The closed vocabulary of the synthetic world: categories built from named parts, colours, textures, sizes.

Every category is a silhouette made of a few primitive shapes in a unit box (x right, y down, both in
[0, 1]); the box is stretched to the category's aspect ratio and scaled to the object's size when drawn.
Parts are drawn in the listed order and a later part covers an earlier one, so a part's pixels are
exactly what is left of it after the later parts, and the parts of an object never overlap.

The vocabulary is deliberately small and crisp (10 categories, 8 colours, 3 textures, 3 sizes) so a
small model trained for an hour on a CPU can learn it, while the scenes (see ``world.py``) make sure
that answering needs the pixels of the right region.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATEGORIES",
    "CATEGORY_NAMES",
    "COLOURS",
    "COLOUR_NAMES",
    "MARKING_DARKNESS",
    "SIZES",
    "SIZE_NAMES",
    "TEXTURES",
    "CategoryShape",
    "PartShape",
    "Primitive",
    "category_id",
    "confusable_categories",
]


@dataclass(frozen=True)
class Primitive:
    """One drawable shape in unit-box coordinates.

    ``kind`` is ``rect`` / ``ellipse`` (coords = x0, y0, x1, y1), ``poly`` (coords = x0, y0, x1, y1, ...),
    ``pieslice`` (x0, y0, x1, y1, start_deg, end_deg; PIL's angle convention) or ``ring`` (an ellipse
    outline; x0, y0, x1, y1 and ``width`` = line width as a fraction of the object's width).
    """

    kind: str
    coords: tuple[float, ...]
    width: float = 0.0


@dataclass(frozen=True)
class PartShape:
    name: str
    primitives: tuple[Primitive, ...]
    plural: bool = False  # "wheels", "legs", "fins": one part made of several pieces


@dataclass(frozen=True)
class CategoryShape:
    name: str
    aspect: float  # width / height of the object's box
    parts: tuple[PartShape, ...]  # in drawing order: later parts cover earlier ones
    accent_part: str | None  # the part that may get a second colour (always a minority of the area)
    group: str  # categories in one group have similar silhouettes: preferred negatives

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts)


def _rect(x0: float, y0: float, x1: float, y1: float) -> Primitive:
    return Primitive("rect", (x0, y0, x1, y1))


def _ellipse(x0: float, y0: float, x1: float, y1: float) -> Primitive:
    return Primitive("ellipse", (x0, y0, x1, y1))


def _poly(*points: tuple[float, float]) -> Primitive:
    return Primitive("poly", tuple(c for p in points for c in p))


def _part(name: str, *primitives: Primitive, plural: bool = False) -> PartShape:
    return PartShape(name, primitives, plural)


CATEGORIES: dict[str, CategoryShape] = {
    c.name: c
    for c in (
        CategoryShape(
            "lamp",
            0.6,
            (
                _part("pole", _rect(0.39, 0.3, 0.61, 0.9)),
                _part("base", _rect(0.1, 0.85, 0.9, 1.0)),
                _part("shade", _poly((0.22, 0.0), (0.78, 0.0), (1.0, 0.36), (0.0, 0.36))),
            ),
            accent_part="base",
            group="stalk",
        ),
        CategoryShape(
            "tree",
            0.78,
            (
                _part("trunk", _rect(0.37, 0.6, 0.63, 1.0)),
                _part("crown", _ellipse(0.0, 0.0, 1.0, 0.72)),
            ),
            accent_part="trunk",
            group="stalk",
        ),
        CategoryShape(
            "mushroom",
            1.1,
            (
                _part("stem", _rect(0.33, 0.4, 0.67, 1.0)),
                _part("cap", Primitive("pieslice", (0.0, 0.0, 1.0, 0.92, 180.0, 360.0))),
            ),
            accent_part="stem",
            group="stalk",
        ),
        CategoryShape(
            "house",
            0.95,
            (
                _part("chimney", _rect(0.64, 0.02, 0.8, 0.4)),
                _part("roof", _poly((0.0, 0.46), (0.5, 0.0), (1.0, 0.46))),
                _part("body", _rect(0.1, 0.44, 0.9, 1.0)),
            ),
            accent_part="chimney",
            group="tall",
        ),
        CategoryShape(
            "rocket",
            0.5,
            (
                _part(
                    "fins",
                    _poly((0.25, 0.5), (0.25, 0.88), (0.0, 1.0), (0.0, 0.72)),
                    _poly((0.75, 0.5), (0.75, 0.88), (1.0, 1.0), (1.0, 0.72)),
                    plural=True,
                ),
                _part("body", _rect(0.25, 0.28, 0.75, 0.92)),
                _part("nose", _poly((0.5, 0.0), (0.75, 0.3), (0.25, 0.3))),
            ),
            accent_part="nose",
            group="tall",
        ),
        CategoryShape(
            "bottle",
            0.42,
            (
                _part("cap", _rect(0.3, 0.0, 0.7, 0.13)),
                _part(
                    "neck",
                    _poly((0.3, 0.13), (0.7, 0.13), (0.7, 0.26), (1.0, 0.42), (0.0, 0.42), (0.3, 0.26)),
                ),
                _part("body", _rect(0.0, 0.4, 1.0, 1.0)),
            ),
            accent_part="cap",
            group="tall",
        ),
        CategoryShape(
            "car",
            1.9,
            (
                _part("cabin", _poly((0.2, 0.45), (0.33, 0.03), (0.68, 0.03), (0.8, 0.45))),
                _part("body", _rect(0.0, 0.4, 1.0, 0.8)),
                _part(
                    "wheels", _ellipse(0.09, 0.56, 0.35, 1.0), _ellipse(0.65, 0.56, 0.91, 1.0), plural=True
                ),
            ),
            accent_part="wheels",
            group="wide",
        ),
        CategoryShape(
            "table",
            1.6,
            (
                _part("top", _rect(0.0, 0.0, 1.0, 0.22)),
                _part("legs", _rect(0.05, 0.2, 0.2, 1.0), _rect(0.8, 0.2, 0.95, 1.0), plural=True),
            ),
            accent_part=None,
            group="wide",
        ),
        CategoryShape(
            "boat",
            1.25,
            (
                _part("mast", _rect(0.44, 0.0, 0.55, 0.72)),
                _part("sail", _poly((0.59, 0.04), (0.59, 0.64), (0.98, 0.64))),
                _part("hull", _poly((0.0, 0.66), (1.0, 0.66), (0.8, 1.0), (0.2, 1.0))),
            ),
            accent_part="sail",
            group="wide",
        ),
        CategoryShape(
            "mug",
            1.25,
            (
                _part("handle", Primitive("ring", (0.44, 0.16, 1.0, 0.8), width=0.13)),
                _part("body", _rect(0.0, 0.0, 0.72, 1.0)),
            ),
            accent_part="handle",
            group="wide",
        ),
    )
}
CATEGORY_NAMES: tuple[str, ...] = tuple(CATEGORIES)

# RGB centres; each object jitters its colour a little (WorldConfig.colour_jitter). Chosen far apart,
# and far from the dark grey background, so the nearest centre is never in doubt.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 215, 45),
    "green": (45, 165, 65),
    "cyan": (40, 195, 205),
    "blue": (45, 80, 215),
    "purple": (145, 65, 195),
    "white": (235, 235, 235),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

# Stripes and dots are drawn in the object's own colour times this factor (a darker shade of the
# same hue), so the texture never changes the object's colour name.
MARKING_DARKNESS = 0.5
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")

# Size class = the object's largest box side as a fraction of the image side. The gaps between the
# bands make the class readable from the mask's box even after a pixel of rounding.
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.17, 0.21),
    "medium": (0.26, 0.31),
    "large": (0.36, 0.42),
}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)


def category_id(name: str) -> int:
    """COCO category id: 1-based position in the full catalogue (stable across WorldConfigs)."""
    try:
        return CATEGORY_NAMES.index(name) + 1
    except ValueError:
        raise ValueError(f"unknown category {name!r}; expected one of {CATEGORY_NAMES}") from None


def confusable_categories(name: str) -> tuple[str, ...]:
    """Other categories whose silhouettes resemble ``name`` (same group), in catalogue order."""
    group = CATEGORIES[name].group
    return tuple(c for c, shape in CATEGORIES.items() if shape.group == group and c != name)
