"""The one place where region masks are decoded, encoded, checked and resized: a primitive beside
:mod:`osprey.image`, shared by training data, inference, serving and evaluation.

Annotations arrive as COCO polygons (a list of ``[x1, y1, x2, y2, ...]`` lists), compressed RLE
(``counts`` a str/bytes), uncompressed RLE (``counts`` a list of run lengths), boxes ``[x, y, w, h]``,
PNG mask files (any non-zero pixel is inside) or numpy arrays. All of them decode here, through
pycocotools (``frPyObjects``, ``merge``, ``decode``) as the official loaders do, to a ``(H, W)`` bool
array at the size of the image the annotation belongs to.

Every input is checked before pycocotools sees it, because pycocotools fails badly on bad input:
an uncompressed RLE whose runs do not add up to ``H*W`` decodes to uninitialised memory (or writes
past the buffer when they add up to more), and a first polygon with exactly four numbers is
silently read as a box. :func:`check` does these checks without rasterising, so parsers can reject
a bad record cheaply at load; :func:`decode` runs them again before decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as coco_mask

MaskKind = Literal["polygon", "rle", "uncompressed_rle", "box", "png", "array"]
MASK_KINDS: tuple[str, ...] = ("polygon", "rle", "uncompressed_rle", "box", "png", "array")

# Polygon and box coordinates may overshoot the image by this many pixels: annotation tools put
# vertices on the outer pixel edge (x == width) and sometimes a rounding step beyond it.
COORD_TOLERANCE = 2.0


class MaskError(ValueError):
    """A segmentation (polygon, RLE, box, PNG, array) or prompt (box, points) that cannot be used at
    the given image size; the message names the bad value and what was expected."""


# --------------------------------------------------------------------------------------------------
# Kinds and cheap structural checks


def infer_kind(segmentation: Any) -> MaskKind:
    """Kind of a COCO-style ``segmentation`` value: polygon list, compressed or uncompressed RLE."""
    if isinstance(segmentation, list):
        return "polygon"
    if isinstance(segmentation, dict) and "counts" in segmentation:
        counts = segmentation["counts"]
        if isinstance(counts, list):
            return "uncompressed_rle"
        if isinstance(counts, str | bytes):
            return "rle"
        raise MaskError(f"RLE 'counts' is a {type(counts).__name__}; expected a str, bytes or list of ints")
    raise MaskError(
        f"segmentation of type {type(segmentation).__name__} ({_short(segmentation)}); expected a list of "
        "polygons or an RLE dict with 'size' and 'counts'"
    )


def check(kind: str, data: Any, height: int, width: int) -> None:
    """Raise :class:`MaskError` if ``data`` of ``kind`` cannot decode to a ``height`` x ``width`` mask.

    Does not rasterise (cheap enough for every record at load). PNG files are only checked when
    decoded, because their path is relative to an image root the caller may not know yet.
    """
    _check_size(height, width)
    if kind == "polygon":
        _check_polygons(data, height, width)
    elif kind in ("rle", "uncompressed_rle"):
        _check_rle(data, height, width)
    elif kind == "box":
        _check_box(data, height, width)
    elif kind == "png":
        if not isinstance(data, str | Path) or not str(data):
            raise MaskError(f"PNG mask reference {_short(data)}; expected a non-empty file path")
    elif kind == "array":
        _check_array(data, height, width)
    else:
        raise MaskError(f"unknown mask kind {kind!r}; expected one of {', '.join(MASK_KINDS)}")


def _check_size(height: Any, width: Any) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MaskError(f"image {name} {value!r}; expected a positive int")


def _check_polygons(polygons: Any, height: int, width: int) -> None:
    if not isinstance(polygons, list) or not polygons:
        raise MaskError(f"polygon segmentation {_short(polygons)}; expected a non-empty list of polygons")
    for k, poly in enumerate(polygons):
        if not isinstance(poly, list | tuple):
            raise MaskError(f"polygon {k} is {_short(poly)}; expected a flat list [x1, y1, x2, y2, ...]")
        if len(poly) < 6 or len(poly) % 2:
            raise MaskError(
                f"polygon {k} has {len(poly)} coordinates; expected an even number >= 6 (3 points)"
            )
        for j, value in enumerate(poly):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise MaskError(f"polygon {k} coordinate {j} is {value!r}; expected a finite number")
        xs, ys = poly[0::2], poly[1::2]
        _check_inside(f"polygon {k}", min(xs), max(xs), min(ys), max(ys), height, width)


def _check_inside(what: str, x0: float, x1: float, y0: float, y1: float, height: int, width: int) -> None:
    tol = COORD_TOLERANCE
    if x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol:
        raise MaskError(
            f"{what} spans x {x0:g}..{x1:g}, y {y0:g}..{y1:g}; expected inside the {width}x{height} image"
        )


def check_box(box: Any, *, layout: Literal["xyxy", "xywh"] = "xyxy") -> tuple[float, float, float, float]:
    """The one box check: 4 finite numbers with a positive extent, as ``(x0, y0, x1, y1)``.

    ``layout`` says how ``box`` is written: ``"xyxy"`` (``[x0, y0, x1, y1]``: prompts, the API, the
    CLI) or ``"xywh"`` (COCO's ``[x, y, w, h]``: annotation files).
    """
    names = "[x0, y0, x1, y1]" if layout == "xyxy" else "[x, y, w, h]"
    if (
        not isinstance(box, list | tuple)
        or len(box) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    ):
        raise MaskError(f"box {_short(box)}; expected {names} as 4 finite numbers")
    if layout == "xywh":
        x, y, w, h = (float(v) for v in box)
        if w <= 0 or h <= 0:
            raise MaskError(f"box {list(box)} has width {w:g} and height {h:g}; expected both > 0")
        return x, y, x + w, y + h
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise MaskError(f"box {list(box)} is empty; expected x1 > x0 and y1 > y0 ([x0, y0, x1, y1])")
    return x0, y0, x1, y1


def box_pixels(box: Any, height: int, width: int) -> tuple[int, int, int, int]:
    """An ``[x0, y0, x1, y1]`` box clipped to the image as whole pixels; an error when no pixel is left."""
    x0, y0, x1, y1 = check_box(box)
    cx0, cx1 = max(0, math.floor(x0)), min(width, math.ceil(x1))
    cy0, cy1 = max(0, math.floor(y0)), min(height, math.ceil(y1))
    if cx1 <= cx0 or cy1 <= cy0:
        raise MaskError(f"box {list(box)!r} covers no pixel of the {width}x{height} image; "
                        "expected x0 < x1 and y0 < y1 inside the image")
    return cx0, cy0, cx1, cy1


def box_mask(box: Any, height: int, width: int) -> np.ndarray:
    """The filled rectangle ``[x0, y0, x1, y1]`` (clipped to the image) as a ``(height, width)`` bool mask."""
    x0, y0, x1, y1 = box_pixels(box, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def check_points(points: Any, labels: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The one point-prompt check: ``(N, 2)`` float ``[x, y]`` pixels inside the image and ``(N,)``
    int labels (1 = inside, 0 = outside; None: all 1), at least one positive."""
    if (not isinstance(points, list | tuple | np.ndarray) or len(points) == 0
            or not all(isinstance(p, list | tuple | np.ndarray) and len(p) == 2 for p in points)):
        raise MaskError(f"points {_short(points)}: expected a non-empty list of [x, y]")
    try:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise MaskError(f"points {_short(points)}: expected [x, y] pairs of numbers") from None
    if not np.isfinite(pts).all():
        raise MaskError(f"points {_short(pts.tolist())}: expected finite coordinates")
    for x, y in pts.tolist():
        if not (0 <= x < width and 0 <= y < height):
            raise MaskError(f"point ({x:g}, {y:g}) lies outside the {width}x{height} image; "
                            f"expected 0 <= x < {width}, 0 <= y < {height}")
    try:
        labs = np.ones(len(pts), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        labs = None
    if labs is None or labs.shape != (len(pts),) or not set(labs.tolist()) <= {0, 1}:
        raise MaskError(f"labels {_short(labels)}: expected one 0/1 per point ({len(pts)} points)")
    if not (labs == 1).any():
        raise MaskError("labels are all 0 (outside): expected at least one positive point")
    return pts, labs


def _check_box(box: Any, height: int, width: int) -> None:
    x0, y0, x1, y1 = check_box(box, layout="xywh")
    _check_inside(f"box {list(box)}", x0, x1, y0, y1, height, width)


def _check_rle(rle: Any, height: int, width: int) -> None:
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise MaskError(f"RLE {_short(rle)}; expected a dict with 'size' and 'counts'")
    size = rle["size"]
    if not isinstance(size, list | tuple) or list(size) != [height, width]:
        raise MaskError(
            f"RLE size {_short(size)}; expected [{height}, {width}] (the image's [height, width])"
        )
    runs = _runs(rle)
    if runs.size and runs.min() < 0:
        raise MaskError(f"RLE has a negative run length {runs.min()}; expected runs >= 0")
    total = _total(runs)
    if total != height * width:
        raise MaskError(
            f"RLE run lengths add up to {_short(total)}; expected {height * width} (= {height} x {width})"
        )


def _total(runs: np.ndarray) -> int:
    """The sum of non-negative runs, exactly (in int64 when it cannot overflow)."""
    if runs.size == 0:
        return 0
    if runs.dtype != object and int(runs.max()) < np.iinfo(np.int64).max // runs.size:
        return int(runs.sum())
    return sum(runs.tolist())


def _check_array(array: Any, height: int, width: int) -> None:
    if not isinstance(array, np.ndarray):
        raise MaskError(f"mask array of type {type(array).__name__}; expected a numpy array")
    if array.shape != (height, width):
        raise MaskError(f"mask array of shape {array.shape}; expected ({height}, {width})")


def rle_counts(rle: dict) -> list[int]:
    """Run lengths of an RLE dict, compressed (COCO's 6-bit string) or uncompressed (a list).

    Needed to check the runs before pycocotools decodes them (see the module docstring).
    """
    return _runs(rle).tolist()


def _runs(rle: dict) -> np.ndarray:
    """:func:`rle_counts` as an array (int64, or object for integers beyond it)."""
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            raise MaskError(f"uncompressed RLE counts {_short(counts)}; expected a list of ints")
        small = all(-(2**62) < c < 2**62 for c in counts)
        return np.asarray(counts, dtype=np.int64 if small else object)
    if isinstance(counts, str):
        counts = counts.encode("ascii", errors="replace")
    if not isinstance(counts, bytes):
        raise MaskError(f"RLE counts of type {type(counts).__name__}; expected str, bytes or list")
    return _coco_runs(counts)


MAX_RUN_GROUPS = 12  # 5-bit groups per run: 60 bits, past any real mask (pycocotools reads into a C long)


def _decode_coco_string(s: bytes) -> list[int]:
    """Run lengths of COCO's compressed RLE string, in time linear in its length."""
    return _coco_runs(s).tolist()


def _coco_runs(s: bytes) -> np.ndarray:
    # COCO's compressed RLE (pycocotools maskApi.c rleFrString): each run is a little-endian
    # sequence of 5-bit groups in chars offset by 48; bit 0x20 says "more groups follow", bit 0x10 of
    # the last group is the sign; runs after the second are stored as deltas to the run two before.
    # Vectorised over the whole string (one pass per step, no Python loop per character).
    codes = np.frombuffer(s, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((codes < 0) | (codes >= 64))
    if bad.size:
        p = int(bad[0])
        raise MaskError(f"compressed RLE has byte {s[p]!r} at {p}; expected chars '0'..'o'")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise MaskError(f"compressed RLE {_short(s)} ends inside a run; expected a complete string")
    ends = np.flatnonzero(~more)  # the last char of every run
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > MAX_RUN_GROUPS:
        run = int(np.argmax(lengths > MAX_RUN_GROUPS))
        raise MaskError(f"compressed RLE run {run} has {int(lengths[run])} groups of 5 bits; expected at most "
                        f"{MAX_RUN_GROUPS} (runs below 2**60)")
    group = np.arange(codes.size) - np.repeat(starts, lengths)  # index of each char within its run
    values = np.add.reduceat((codes & 0x1F) << (5 * group), starts)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.left_shift(np.int64(1), 5 * lengths[negative])  # sign-extend: value | (-1 << shift)
    if int(np.abs(values).max()) >= np.iinfo(np.int64).max // max(values.size, 1):
        return _delta_sums_exact(values)  # the running sums below could leave int64
    values[1::2] = np.cumsum(values[1::2])  # runs k > 2 add run k - 2: two interleaved running sums,
    values[2::2] = np.cumsum(values[2::2])  # one from run 1, one from run 2 (run 0 stands alone)
    return values


def _delta_sums_exact(values: np.ndarray) -> np.ndarray:
    """The delta sums in Python integers (runs so large that int64 could overflow), as an object array."""
    runs: list[int] = []
    for value in values.tolist():
        runs.append(value + runs[-2] if len(runs) > 2 else value)
    return np.asarray(runs, dtype=object)


# --------------------------------------------------------------------------------------------------
# Decoding


def decode(kind: str, data: Any, height: int, width: int, *, root: str | Path | None = None) -> np.ndarray:
    """Decode a mask of ``kind`` to a ``(height, width)`` bool array. ``root`` resolves PNG paths."""
    if kind == "polygon":
        return decode_polygons(data, height, width)
    if kind in ("rle", "uncompressed_rle"):
        return decode_rle(data, height, width)
    if kind == "box":
        return decode_box(data, height, width)
    if kind == "png":
        path = Path(data) if root is None else Path(root) / data
        return load_png_mask(path, height=height, width=width)
    if kind == "array":
        return from_array(data, height, width)
    raise MaskError(f"unknown mask kind {kind!r}; expected one of {', '.join(MASK_KINDS)}")


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` field (polygons or either RLE form)."""
    return decode(infer_kind(segmentation), segmentation, height, width)


def decode_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise and union COCO polygons (pycocotools ``frPyObjects`` + ``merge``)."""
    _check_size(height, width)
    _check_polygons(polygons, height, width)
    rles = coco_mask.frPyObjects([[float(v) for v in poly] for poly in polygons], height, width)
    return _decode(coco_mask.merge(rles))


def decode_rle(rle: dict, height: int, width: int) -> np.ndarray:
    """Decode compressed or uncompressed RLE after checking its size and run lengths."""
    _check_size(height, width)
    _check_rle(rle, height, width)
    if isinstance(rle["counts"], list):
        rle = coco_mask.frPyObjects(rle, height, width)
    return _decode(rle)


def decode_box(box_xywh: Sequence[float], height: int, width: int) -> np.ndarray:
    """Fill a COCO box ``[x, y, w, h]`` (pycocotools ``frPyObjects`` on a box array)."""
    _check_size(height, width)
    _check_box(box_xywh, height, width)
    rles = coco_mask.frPyObjects(np.asarray([box_xywh], dtype=np.float64), height, width)
    return _decode(rles[0])


def load_png_mask(path: str | Path, *, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Read a PNG mask file: any non-zero pixel (in any channel) is inside the region."""
    path = Path(path)
    if not path.is_file():
        raise MaskError(f"PNG mask {str(path)!r} does not exist; expected a mask image file")
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except OSError as err:
        raise MaskError(f"PNG mask {str(path)!r} cannot be read ({err}); expected an image file") from err
    if array.ndim == 3:
        array = array.any(axis=-1)
    if height is not None and width is not None and array.shape != (height, width):
        raise MaskError(
            f"PNG mask {str(path)!r} is {array.shape[1]}x{array.shape[0]}; expected {width}x{height}"
        )
    return array != 0


def from_array(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A numpy mask of shape ``(height, width)`` as bool (non-zero is inside)."""
    _check_size(height, width)
    _check_array(array, height, width)
    return np.asarray(array) != 0


def _decode(rle: dict) -> np.ndarray:
    return coco_mask.decode(rle).astype(bool)


# --------------------------------------------------------------------------------------------------
# Encoding and geometry


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed RLE of a ``(H, W)`` mask, JSON-ready (``counts`` as str)."""
    if mask.ndim != 2:
        raise MaskError(f"mask of shape {mask.shape}; expected (H, W)")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def encode_instances(masks: Sequence[np.ndarray]) -> list[dict[str, Any]]:
    """COCO instance fields of (H, W) bool masks of one image, encoded in one pycocotools call:
    ``{"segmentation": compressed RLE (counts as str), "bbox": [x, y, w, h] floats, "area": int}``."""
    stack = np.empty((*masks[0].shape, len(masks)), dtype=np.uint8, order="F")  # (H, W, N), as pycocotools wants
    for i, mask in enumerate(masks):
        stack[:, :, i] = mask
    rles = coco_mask.encode(stack)
    boxes = coco_mask.toBbox(rles)
    areas = coco_mask.area(rles)
    out = []
    for rle, box, area in zip(rles, boxes, areas, strict=True):
        segmentation = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
        out.append({"segmentation": segmentation, "bbox": [float(v) for v in box], "area": int(area)})
    return out


def xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    """``[x, y, w, h]`` (COCO) to ``[x1, y1, x2, y2]``."""
    x, y, w, h = box
    return [x, y, x + w, y + h]


def xyxy_to_xywh(box: Sequence[float]) -> list[float]:
    """``[x1, y1, x2, y2]`` to ``[x, y, w, h]`` (COCO)."""
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def mask_box(mask: np.ndarray) -> list[int] | None:
    """Tight ``[x, y, w, h]`` box of the pixels inside ``mask``; ``None`` for an empty mask."""
    rows, cols = np.flatnonzero(np.any(mask, axis=1)), np.flatnonzero(np.any(mask, axis=0))
    if cols.size == 0:  # (no index array per pixel: a 4096 x 4096 mask stays cheap)
        return None
    x0, y0 = int(cols[0]), int(rows[0])
    return [x0, y0, int(cols[-1]) - x0 + 1, int(rows[-1]) - y0 + 1]


def mask_record(index: int, mask: np.ndarray) -> dict[str, Any]:
    """A mask as JSON (the server's answers and ``osprey describe``'s answers.json): 1-based region
    number, COCO RLE, area and ``[x, y, w, h]`` box."""
    return {"region": index + 1, "rle": encode_rle(mask), "area": int(np.count_nonzero(mask)), "box": mask_box(mask)}


def mask_centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """``(x, y)`` mean of the pixels inside ``mask``; ``None`` for an empty mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.mean()), float(ys.mean())


def pick(masks: Sequence[np.ndarray], x: float, y: float) -> int | None:
    """Index of the smallest mask containing pixel ``(x, y)`` (the official demo's rule), else None."""
    best, best_area = None, None
    xi, yi = int(x), int(y)
    for index, mask in enumerate(masks):
        if 0 <= yi < mask.shape[0] and 0 <= xi < mask.shape[1] and mask[yi, xi]:
            area = int(mask.sum())
            if best_area is None or area < best_area:
                best, best_area = index, area
    return best


def sort_by_area(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Largest first, as the official demo draws "segment everything" results."""
    return sorted((np.asarray(m, dtype=bool) for m in masks), key=lambda m: -int(m.sum()))


def mask_nms(masks: Sequence[np.ndarray], scores: Sequence[float], iou_threshold: float = 0.7) -> list[int]:
    """Greedy non-maximum suppression on mask IoU (highest score first); kept indices.

    Our own, on masks rather than boxes: ``torchvision.ops.nms`` does not run beside the CPU torch.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    flat = [np.asarray(m, dtype=bool).ravel() for m in masks]
    areas = [int(f.sum()) for f in flat]
    kept: list[int] = []
    for i in order.tolist():
        if areas[i] == 0:
            continue
        overlaps = [int(np.logical_and(flat[i], flat[k]).sum()) for k in kept]
        if all(o / (areas[i] + areas[k] - o) <= iou_threshold for o, k in zip(overlaps, kept, strict=True)):
            kept.append(i)
    return kept


# --------------------------------------------------------------------------------------------------
# Tensors and resizing (shared by training and inference)


def masks_to_tensor(masks: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack ``R`` masks of one image into a ``(R, H, W)`` float32 tensor of 0/1.

    Zero masks give ``(0, 0, 0)``; masks of different sizes are an error (they belong to one image).
    """
    if not masks:
        return torch.zeros((0, 0, 0), dtype=torch.float32)
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise MaskError(
            f"masks of shapes {sorted(shapes)}; expected one (H, W) shape for all masks of an image"
        )
    return torch.from_numpy(np.stack([np.asarray(m) != 0 for m in masks])).to(torch.float32)


def resize_masks(
    masks: torch.Tensor, size: tuple[int, int], *, mode: Literal["nearest", "bilinear"] = "nearest"
) -> torch.Tensor:
    """Resize ``(R, H, W)`` masks to ``size = (h, w)``; returns float32 ``(R, h, w)``.

    ``nearest`` keeps masks binary (``nearest-exact``: pixel centres, no half-pixel shift);
    ``bilinear`` (``align_corners=False``, no antialias, as the official mask extractor does) gives
    soft masks in [0, 1].
    """
    if masks.ndim != 3:
        raise MaskError(f"masks of shape {tuple(masks.shape)}; expected (R, H, W)")
    if masks.shape[0] == 0:
        return masks.new_zeros((0, *size), dtype=torch.float32)
    x = masks.to(torch.float32).unsqueeze(0)  # (1, R, H, W)
    if mode == "nearest":
        out = F.interpolate(x, size=size, mode="nearest-exact")
    elif mode == "bilinear":
        out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    else:
        raise MaskError(f"resize mode {mode!r}; expected 'nearest' or 'bilinear'")
    return out.squeeze(0)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of one ``(H, W)`` mask to ``size = (h, w)``; returns bool."""
    if mask.ndim != 2:
        raise MaskError(f"mask of shape {mask.shape}; expected (H, W)")
    out = resize_masks(torch.from_numpy(np.asarray(mask) != 0)[None], size, mode="nearest")
    return out[0].numpy() > 0.5


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
