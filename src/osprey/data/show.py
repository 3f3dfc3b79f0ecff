"""Render a sample as a PNG: the image with coloured, numbered mask overlays and the conversation.

For looking at data by eye (``osprey data show``): does each ``<regionK>`` sit on the mask it should,
is the template right, is the answer plausible. Region tags in the text take the colour of their
mask. matplotlib (the ``train`` extra) is imported only here, only when rendering.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from osprey.data.sample import REGION_TAG_RE, Sample
from osprey.masks import MaskError
from osprey.overlay import region_color

TEXT_WIDTH_IN = 6.4  # conversation column
WRAP_CHARS = 78
FONT_PT = 9.0
LINE_IN = FONT_PT * 1.5 / 72
MAX_FIG_HEIGHT_IN = 36.0
def render_sample(
    sample: Sample, out: str | Path, *, image_root: str | Path | None = None, dpi: int = 110
) -> Path:
    """Write ``sample`` as a PNG at ``out``; a missing image is drawn as a grey canvas with a note."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    image, note = _load_image(sample, image_root)
    masks, mask_notes = _decode_all(sample, image_root, image.shape[:2])
    lines = _text_lines(sample, note, mask_notes)

    img_h, img_w = image.shape[:2]
    img_w_in = 6.0 if img_w >= img_h else 6.0 * img_w / img_h
    img_h_in = img_w_in * img_h / img_w
    margin = 0.3
    text_h_in = len(lines) * LINE_IN
    fig_h = min(max(img_h_in, text_h_in) + 2 * margin, MAX_FIG_HEIGHT_IN)
    fig_w = img_w_in + TEXT_WIDTH_IN + 3 * margin
    max_lines = int((fig_h - 2 * margin) / LINE_IN)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], (f"... {len(lines) - max_lines + 1} more lines not shown", "note")]

    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    ax = fig.add_axes((margin / fig_w, 1 - (margin + img_h_in) / fig_h, img_w_in / fig_w, img_h_in / fig_h))
    ax.imshow(image, interpolation="nearest" if max(img_h, img_w) < 256 else "antialiased")
    ax.imshow(_overlay(masks), interpolation="nearest")
    for k, mask in enumerate(masks, start=1):
        if mask is not None and mask.any():
            x, y = _label_point(mask)
            ax.text(
                x, y, str(k), color="white", fontsize=10, fontweight="bold", ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.25", "facecolor": region_color(k), "edgecolor": "white", "lw": 0.8},
            )  # fmt: skip
    ax.set_axis_off()
    _draw_text(fig, lines, x_in=img_w_in + 2 * margin, top_in=margin, fig_w=fig_w, fig_h=fig_h)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor="white")
    plt.close(fig)
    return out


def _load_image(sample: Sample, image_root: str | Path | None) -> tuple[np.ndarray, str | None]:
    path = Path(image_root) / sample.image.path if image_root is not None else None
    if path is not None and path.is_file():
        try:
            with Image.open(path) as img:
                return np.asarray(img.convert("RGB")), None
        except OSError as err:
            note = f"image {sample.image.path!r} cannot be read ({err})"
    else:
        note = f"image {sample.image.path!r} not found" + ("" if image_root else " (no image folder given)")
    height, width = sample.image.height or 480, sample.image.width or 640
    return np.full((height, width, 3), 200, dtype=np.uint8), note


def _decode_all(
    sample: Sample, image_root: str | Path | None, shape: tuple[int, int]
) -> tuple[list[np.ndarray | None], list[str]]:
    masks: list[np.ndarray | None] = []
    notes = []
    for k, region in enumerate(sample.regions, start=1):
        try:
            mask = region.decode(image_root)
        except MaskError as err:
            masks.append(None)
            notes.append(f"region {k}: cannot decode ({err})")
            continue
        if mask.shape != shape:
            notes.append(f"region {k}: mask is {mask.shape[1]}x{mask.shape[0]}, image {shape[1]}x{shape[0]}")
            mask = None
        elif not mask.any():
            notes.append(f"region {k}: empty mask")
        masks.append(mask)
    return masks, notes


def _overlay(masks: list[np.ndarray | None]) -> np.ndarray:
    """RGBA layer: translucent fill per region, opaque outline."""
    shape = next((m.shape for m in masks if m is not None), (1, 1))
    rgba = np.zeros((*shape, 4), dtype=np.float32)
    for k, mask in enumerate(masks, start=1):
        if mask is None:
            continue
        color = np.array([*region_color(k), 0.45], dtype=np.float32)
        rgba[mask] = color
        rgba[_outline(mask)] = [*region_color(k), 1.0]
    return rgba


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` within ``t`` steps of its border; ``t`` grows with the image (~2 px on screen)."""
    interior = mask
    for _ in range(max(1, round(max(mask.shape) / 320))):
        padded = np.pad(interior, 1)
        interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _label_point(mask: np.ndarray) -> tuple[float, float]:
    """The centroid when it lies on the mask, else the mask pixel nearest to it."""
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean(), ys.mean()
    if mask[int(cy), int(cx)]:
        return float(cx), float(cy)
    nearest = np.argmin((xs - cx) ** 2 + (ys - cy) ** 2)
    return float(xs[nearest]), float(ys[nearest])


def _text_lines(sample: Sample, image_note: str | None, mask_notes: list[str]) -> list[tuple[str, str]]:
    """``(text, style)`` lines of the right column; style in title / meta / note / user / assistant / body."""
    size = f"{sample.image.width}x{sample.image.height}" if sample.image.height else "size unknown"
    lines = [(sample.sample_id, "title")]
    meta = [f"source {sample.source}  |  task {sample.task}  |  {len(sample.regions)} regions"]
    meta.append(f"image {sample.image.path} ({size})")
    for text, style in [(m, "meta") for m in meta] + [
        (n, "note") for n in ([image_note] if image_note else []) + mask_notes
    ]:
        lines += [(line, style) for line in textwrap.wrap(text, WRAP_CHARS, break_long_words=True)]
    lines.append(("", "body"))
    for turn in sample.turns:
        lines.append(("USER" if turn.role == "user" else "ASSISTANT", turn.role))
        for paragraph in turn.text.split("\n"):
            wrapped = textwrap.wrap(paragraph, WRAP_CHARS, break_long_words=True) or [""]
            lines += [(line, "body") for line in wrapped]
        lines.append(("", "body"))
    return lines


_STYLES: dict[str, dict[str, Any]] = {
    "title": {"fontsize": FONT_PT + 2, "fontweight": "bold", "color": "black"},
    "meta": {"fontsize": FONT_PT, "color": "0.35"},
    "note": {"fontsize": FONT_PT, "color": (0.8, 0.1, 0.1), "fontstyle": "italic"},
    "user": {"fontsize": FONT_PT, "fontweight": "bold", "color": (0.1, 0.3, 0.6)},
    "assistant": {"fontsize": FONT_PT, "fontweight": "bold", "color": (0.1, 0.5, 0.2)},
    "body": {"fontsize": FONT_PT, "color": "0.1"},
}


def _draw_text(
    fig: Any, lines: list[tuple[str, str]], *, x_in: float, top_in: float, fig_w: float, fig_h: float
) -> None:
    """Draw the lines top-down; ``<regionK>`` tags in body lines get their region's colour."""
    renderer = fig.canvas.get_renderer()
    for i, (text, style) in enumerate(lines):
        y = 1 - (top_in + (i + 0.8) * LINE_IN) / fig_h
        if style != "body":
            fig.text(x_in / fig_w, y, text, **_STYLES[style])
            continue
        x = x_in / fig_w
        for piece, kwargs in _segments(text):
            artist = fig.text(x, y, piece, **kwargs)
            x += artist.get_window_extent(renderer).width / (fig_w * fig.dpi)


def _segments(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``text`` split into plain pieces and ``<regionK>`` tags, each with its text style."""
    segments: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    for match in REGION_TAG_RE.finditer(text):
        if match.start() > pos:
            segments.append((text[pos : match.start()], _STYLES["body"]))
        tag_style = {**_STYLES["body"], "color": region_color(int(match.group(1))), "fontweight": "bold"}
        segments.append((match.group(0), tag_style))
        pos = match.end()
    if pos < len(text):
        segments.append((text[pos:], _STYLES["body"]))
    return segments
