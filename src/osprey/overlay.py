"""Region colours and overlay pictures: masks drawn translucent over the image, numbered at their
centroids. :data:`PALETTE` is the one palette of the project: the overlay PNGs, ``osprey data show``
and the web demo (``serve/ui.py`` writes it into the page) give region k the same colour."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = (  # tab10, distinct on photos
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
)  # fmt: skip


def region_color(k: int) -> tuple[float, float, float]:
    """Colour of region ``k`` (1-based) as RGB in [0, 1], shared by its overlay, label and tags in the text."""
    return PALETTE[(k - 1) % len(PALETTE)]


def region_hex(k: int) -> str:
    """Colour of region ``k`` (1-based) as ``#rrggbb`` (the web demo's swatches and outlines)."""
    return "#" + "".join(f"{round(c * 255):02x}" for c in region_color(k))


def _rgb(index: int) -> np.ndarray:
    """Region ``index`` (0-based) in its :func:`region_color`, 0-255."""
    return np.array(region_color(index + 1), dtype=np.float32) * 255


def overlay(image: Image.Image, masks: Sequence[np.ndarray], alpha: float = 0.45) -> Image.Image:
    """The image with mask k tinted in colour k and labelled ``k+1`` at its centroid."""
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    for index, mask in enumerate(masks):
        region = np.asarray(mask, dtype=bool)
        colour = _rgb(index)
        canvas[region] = (1 - alpha) * canvas[region] + alpha * colour
        edge = region & ~_erode(region)
        canvas[edge] = colour
    picture = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(12, picture.height // 25))
    for index, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        label = str(index + 1)
        x, y = float(xs.mean()), float(ys.mean())
        box = draw.textbbox((x, y), label, font=font, anchor="mm")
        draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
        draw.text((x, y), label, fill=tuple(int(c) for c in _rgb(index)), font=font, anchor="mm")
    return picture


def _erode(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])


def save_overlay(image: Image.Image, masks: Sequence[np.ndarray], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    overlay(image, masks).save(path)
    return path
