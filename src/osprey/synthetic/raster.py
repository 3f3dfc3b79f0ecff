"""Rasterising one object: its part-label window and its texture markings.

Both are pure functions of the object's placement (``ObjectSpec``), so the scene generator (which needs
the masks) and ``render`` (which needs the pixels) always agree. Drawing uses PIL without
anti-aliasing, so a pixel belongs to exactly one part and the masks match the rendered colours exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from osprey.synthetic.vocabulary import CATEGORIES, Primitive

__all__ = ["ObjectSpec", "rasterise_parts", "texture_marks", "texture_period"]


@dataclass(frozen=True)
class ObjectSpec:
    """Everything needed to draw one object: what it is and where its box lies (pixels)."""

    category: str
    colour: str
    texture: str
    size: str
    x0: int
    y0: int
    width: int
    height: int
    flip: bool  # mirrored left-right
    rgb: tuple[int, int, int]  # the object's colour after jitter
    accent_part: str | None = None  # a part painted in a second colour, if any
    accent_colour: str | None = None
    accent_rgb: tuple[int, int, int] | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1/y1 exclusive: the window the object is drawn into."""
        return self.x0, self.y0, self.x0 + self.width, self.y0 + self.height

    def part_colour(self, part: str) -> str:
        return self.accent_colour if part == self.accent_part and self.accent_colour else self.colour

    def part_texture(self, part: str) -> str:
        """Accent parts are always solid; the others carry the object's texture."""
        return "solid" if part == self.accent_part and self.accent_colour else self.texture


def texture_period(image_size: int) -> int:
    """Pixels between two stripes or dots: about 9 px at 256, never under 6 px so marks stay visible."""
    return max(6, round(image_size / 28))


def _scale(prim: Primitive, width: int, height: int, flip: bool) -> list[float]:
    """Unit-box coordinates of a rect/ellipse/poly/pieslice/ring to window pixels (centres of pixels)."""
    sx, sy = width - 1, height - 1
    c = prim.coords
    if prim.kind == "poly":
        xs = [(1.0 - x if flip else x) * sx for x in c[0::2]]
        ys = [y * sy for y in c[1::2]]
        return [v for xy in zip(xs, ys) for v in xy]
    x0, y0, x1, y1 = c[:4]
    if flip:
        x0, x1 = 1.0 - x1, 1.0 - x0
    return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]


@functools.lru_cache(maxsize=512)
def rasterise_parts(spec: ObjectSpec) -> np.ndarray:
    """(height, width) uint8 label window: 0 = not this object, k = the k-th part (1-based, drawing order).

    Cached (the generator and ``render`` both ask for it); the array is read-only.
    """
    shape = CATEGORIES[spec.category]
    canvas = Image.new("L", (spec.width, spec.height), 0)
    draw = ImageDraw.Draw(canvas)
    for label, part in enumerate(shape.parts, start=1):
        for prim in part.primitives:
            xy = _scale(prim, spec.width, spec.height, spec.flip)
            if prim.kind == "rect":
                draw.rectangle(xy, fill=label)
            elif prim.kind == "ellipse":
                draw.ellipse(xy, fill=label)
            elif prim.kind == "poly":
                draw.polygon(xy, fill=label)
            elif prim.kind == "pieslice":
                start, end = prim.coords[4:6]
                if spec.flip:
                    start, end = 180.0 - end, 180.0 - start
                draw.pieslice(xy, start, end, fill=label)
            elif prim.kind == "ring":
                line = max(2, round(prim.width * spec.width))
                draw.ellipse(xy, outline=label, width=line)
            else:
                raise ValueError(f"unknown primitive kind {prim.kind!r} in category {spec.category!r}")
    labels = np.asarray(canvas, dtype=np.uint8).copy()
    labels.flags.writeable = False
    return labels


@functools.lru_cache(maxsize=512)
def texture_marks(texture: str, height: int, width: int, period: int) -> np.ndarray:
    """(height, width) bool: where the darker stripes/dots of a texture fall inside an object's window.

    The pattern is anchored to the window, so it moves with the object. About a third of the pixels
    are marked, so the object's own colour always stays the majority. Cached; read-only.
    """
    yy, xx = np.ogrid[:height, :width]
    if texture == "solid":
        marks = np.zeros((height, width), dtype=bool)
    elif texture == "striped":
        marks = (xx + yy) % period < max(2, round(period * 0.35))
    elif texture == "dotted":
        half = period / 2.0
        dx = (xx % period) - half + 0.5
        dy = (yy % period) - half + 0.5
        marks = dx * dx + dy * dy <= (0.3 * period) ** 2
    else:
        raise ValueError(f"unknown texture {texture!r}; expected solid, striped or dotted")
    marks.flags.writeable = False
    return marks
