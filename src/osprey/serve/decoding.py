"""Client bytes decoded: images and region masks. Nothing here reads a file or a URL a client names.

Images and PNG masks travel as bytes (base64 or a ``data:`` URL). Only PNG, JPEG, WebP, BMP and GIF
(its first frame) are decoded, and only after their header has passed the pixel and aspect-ratio
caps. A string that is not base64 of such an image and looks like a path or a URL is refused as
one. Region specs are checked cheaply here (:func:`check_specs`: types, sizes, run sums) before
any of them reaches the model worker, which then decodes them (:func:`decode_regions`). Every
function raises :class:`~osprey.serve.http.BadRequest` naming the bad field and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from osprey import masks as mask_io
from osprey.inference.regions import to_masks
from osprey.serve.http import BadRequest

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?:;[\w=.-]+)*?(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
MAX_POLYGON_COORDS = 200_000  # numbers over all polygons of one region
MAX_POLYGONS = 1_000
MAX_RLE_CHARS = 4_000_000  # compressed counts; decoding is linear (osprey.masks)
MAX_POINTS = 64  # clicks in one prompt

_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


# --------------------------------------------------------------------------------------------- images


def _is_image(raw: bytes) -> bool:
    return raw.startswith(MAGIC) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP")


def _bytes_of(data: Any, what: str) -> bytes:
    """Bytes from base64 text or a ``data:`` URL; URLs and paths are refused (never fetched or read)."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    expected = "base64 image bytes (PNG, JPEG, WebP, BMP or GIF) or a data: URL"
    if not isinstance(data, str):
        raise BadRequest(f"{what} is a {type(data).__name__}; expected {expected}", param=what)
    text = data.strip()
    if not text:
        raise BadRequest(f"{what} is empty; expected {expected}", param=what)
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "file:", "ftp://", "s3://")):
        raise BadRequest(f"{what} is a URL ({text[:40]!r}); this server never fetches URLs: send the bytes "
                         "as base64 or a data: URL", param=what)
    match = DATA_URL.match(text[:256]) if lowered.startswith("data:") else None
    if lowered.startswith("data:"):
        if match is None or not match.group("b64"):
            raise BadRequest(f"{what} is a data: URL without ';base64,'; expected data:image/png;base64,...",
                             param=what)
        text = text[text.index(",") + 1:]
    compact = re.sub(r"\s+", "", text).encode("ascii", errors="replace")
    raw = None
    if _BASE64.fullmatch(compact):
        try:
            raw = base64.b64decode(compact + b"=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is not None and (_is_image(raw) or match is not None):
        return raw
    if match is None and (text.startswith(("/", "./", "../", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", text)):
        raise BadRequest(f"{what} looks like a file path ({text[:40]!r}); this server never reads paths a "
                         "client names: send the bytes as base64 or a data: URL", param=what)
    if raw is None:
        raise BadRequest(f"{what} is not valid base64 ({text[:24]!r}...); expected {expected}", param=what)
    return raw  # base64 of something else: _open names what it is not


def _open(raw: bytes, what: str, max_pixels: int, max_aspect: float, exact: tuple[int, int] | None = None
          ) -> Image.Image:
    """Open ``raw`` from the whitelist, check its header's size, then decode it (first frame)."""
    try:
        image = Image.open(io.BytesIO(raw), formats=FORMATS)
        width, height = image.size  # read from the header, before any pixel is decoded
    except Image.DecompressionBombError as err:  # Pillow's own guard (over 2 x MAX_IMAGE_PIXELS)
        raise BadRequest(f"{what}: {err}; at most {max_pixels} pixels are allowed", status=413, param=what,
                         code="image_too_large") from None
    except Exception as err:  # Pillow raises many kinds on hostile headers
        raise BadRequest(f"{what}: {len(raw)} bytes that are not a readable image in an allowed format "
                         f"({type(err).__name__}); expected PNG, JPEG, WebP, BMP or GIF", param=what) from None
    if width < 1 or height < 1 or width * height > max_pixels:
        raise BadRequest(f"{what} is {width}x{height} = {width * height} pixels; at most {max_pixels} are "
                         "allowed", status=413, param=what, code="image_too_large")
    if max(width, height) > max_aspect * min(width, height):
        raise BadRequest(f"{what} is {width}x{height}, an aspect ratio over {max_aspect:g}:1; expected at most "
                         f"{max_aspect:g}:1", status=413, param=what, code="image_too_large")
    if exact is not None and (width, height) != exact:
        raise BadRequest(f"{what} is {width}x{height}; expected the image's {exact[0]}x{exact[1]}", param=what)
    try:
        image.seek(0)
        image.load()
    except Exception as err:
        raise BadRequest(f"{what}: the image data is truncated or corrupt ({type(err).__name__}: "
                         f"{str(err)[:120]})", param=what) from None
    return image


def decode_image(data: Any, max_pixels: int, what: str = "image", max_aspect: float = 10.0) -> Image.Image:
    """An RGB PIL image from bytes, base64 or a ``data:`` URL."""
    image = _open(_bytes_of(data, what), what, max_pixels, max_aspect)
    try:
        return image.convert("RGB")
    except Exception as err:
        raise BadRequest(f"{what}: pixels of mode {image.mode} cannot become RGB ({type(err).__name__})",
                         param=what) from None


def decode_mask_image(data: Any, height: int, width: int, what: str) -> np.ndarray:
    """A ``(height, width)`` bool mask from a PNG (or any allowed image): alpha > 0 where there is an
    alpha channel, else any non-zero channel."""
    image = _open(_bytes_of(data, what), what, height * width, math.inf, exact=(width, height))
    try:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            return np.asarray(image.convert("RGBA"))[..., 3] > 0
        array = np.asarray(image)
    except Exception as err:
        raise BadRequest(f"{what}: cannot read its pixels ({type(err).__name__})", param=what) from None
    return (array.any(axis=-1) if array.ndim == 3 else array != 0).astype(bool)


# -------------------------------------------------------------------------------------------- regions

_PATH_KEYS = ("path", "file", "filename", "url", "uri")
_KEYS = ("counts", "rle", "segmentation", "polygons", "png", "mask", "box", "points", "point")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_specs(specs: Sequence[Any], height: int, width: int) -> None:
    """Cheap checks of every region spec against a ``height`` x ``width`` image, before the worker:
    types, sizes (polygon numbers, RLE length, points) and RLE run sums. Nothing is rasterised."""
    for index, spec in enumerate(specs):
        try:
            _check_spec(index, spec, height, width)
        except mask_io.MaskError as err:
            raise BadRequest(f"region {index}: {err}", param=f"regions[{index}]") from None


def _check_spec(index: int, spec: Any, height: int, width: int) -> None:
    where = f"regions[{index}]"
    if isinstance(spec, str):
        raise BadRequest(f"region {index} is a string ({spec[:40]!r}); this server never reads paths: send a "
                         "mask as {'png': <base64>}, {'size','counts'} RLE, polygons, a box or a point", param=where)
    if isinstance(spec, list):
        if spec and all(_number(v) for v in spec):
            raise BadRequest(f"region {index} is a flat list of {len(spec)} numbers; expected a list of polygons "
                             "[[x1, y1, x2, y2, ...], ...] (wrap it in a list) or an object such as "
                             "{'box': [x0, y0, x1, y1]}", param=where)
        _check_polygons(index, spec, height, width)
        return
    if not isinstance(spec, Mapping):
        raise BadRequest(f"region {index} is a {type(spec).__name__} ({str(spec)[:40]}); expected an object "
                         "such as {'box': [x0, y0, x1, y1]} or a list of polygons", param=where)
    named = [k for k in _PATH_KEYS if k in spec]
    if named:
        raise BadRequest(f"region {index} names a {named[0]!r}; this server never reads paths or URLs a "
                         "client names: send the mask bytes as {'png': <base64>}", param=where)
    kind = next((k for k in _KEYS if k in spec), None)
    if kind is None:
        raise BadRequest(f"region {index} has keys {sorted(map(str, spec))[:8]}; expected one of 'counts' "
                         "(with 'size'), 'rle', 'segmentation', 'polygons', 'png', 'box', 'points', 'point'",
                         param=where)
    if kind == "counts":
        _check_rle(index, spec, height, width)
    elif kind in ("rle", "segmentation"):
        value = spec[kind]
        if isinstance(value, list):
            _check_polygons(index, value, height, width)
        else:
            _check_rle(index, value, height, width)
    elif kind == "polygons":
        _check_polygons(index, spec["polygons"], height, width)
    elif kind in ("png", "mask"):
        if not isinstance(spec[kind], str) or not spec[kind].strip():
            raise BadRequest(f"region {index} {kind} is {type(spec[kind]).__name__ if not isinstance(spec[kind], str) else 'empty'}; "
                             "expected base64 PNG bytes or a data: URL", param=f"{where}.{kind}")
    elif kind == "box":
        mask_io.box_pixels(spec["box"], height, width)
        if not isinstance(spec.get("segment", False), bool):
            raise BadRequest(f"region {index} segment is {spec['segment']!r}; expected true or false",
                             param=f"{where}.segment")
    else:
        points = spec["points"] if kind == "points" else [spec["point"]]
        if isinstance(points, list) and len(points) > MAX_POINTS:
            raise BadRequest(f"region {index} has {len(points)} points; at most {MAX_POINTS} are allowed",
                             param=f"{where}.points")
        mask_io.check_points(points, spec.get("labels"), height, width)


def _check_polygons(index: int, polygons: Any, height: int, width: int) -> None:
    if not isinstance(polygons, list) or not polygons:
        raise BadRequest(f"region {index} polygons are {str(polygons)[:40]}; expected a non-empty list of "
                         "[x1, y1, x2, y2, ...] lists", param=f"regions[{index}]")
    total = sum(len(p) if isinstance(p, list) else 1 for p in polygons)
    if len(polygons) > MAX_POLYGONS or total > MAX_POLYGON_COORDS:
        raise BadRequest(f"region {index} has {len(polygons)} polygons of {total} numbers; at most "
                         f"{MAX_POLYGONS} polygons and {MAX_POLYGON_COORDS} numbers are allowed", status=413,
                         param=f"regions[{index}]")
    mask_io.check("polygon", polygons, height, width)


def _check_rle(index: int, rle: Any, height: int, width: int) -> None:
    where = f"regions[{index}]"
    if not isinstance(rle, Mapping) or "counts" not in rle or "size" not in rle:
        raise BadRequest(f"region {index} RLE is {str(rle)[:40]}; expected {{'size': [H, W], 'counts': ...}}",
                         param=where)
    counts = rle["counts"]
    if isinstance(counts, str) and len(counts) > MAX_RLE_CHARS:
        raise BadRequest(f"region {index} RLE counts has {len(counts)} characters; at most {MAX_RLE_CHARS} "
                         "are allowed", status=413, param=f"{where}.counts")
    if isinstance(counts, list) and len(counts) > height * width + 1:
        raise BadRequest(f"region {index} RLE counts has {len(counts)} runs; a {width}x{height} mask has at "
                         f"most {height * width + 1}", param=f"{where}.counts")
    mask_io.check("rle", dict(rle), height, width)


def upscale(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour ``mask`` at ``height`` x ``width`` (pixel centres), by indexing."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return np.asarray(mask, dtype=bool)[rows[:, None], cols[None, :]]


def shrink(image: Image.Image, max_pixels: int | None) -> tuple[Image.Image, float]:
    """``image`` scaled down to at most ``max_pixels`` (itself when it is no bigger), and the scale."""
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image, 1.0
    scale = (max_pixels / (image.width * image.height)) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR), size[0] / image.width


class CheckedProvider:
    """A mask provider whose every call first runs ``check()`` (the job's deadline check) and, on
    an image over ``max_pixels``, runs on a smaller copy (its mask scaled back up): the weight-free
    provider's time and memory grow with the pixels."""

    def __init__(self, provider: Any, check: Callable[[], None] | None = None, max_pixels: int | None = None) -> None:
        self.provider, self.check, self.max_pixels = provider, check or (lambda: None), max_pixels
        self._small: tuple[int, Image.Image, float] | None = None

    def _shrunk(self, image: Image.Image) -> tuple[Image.Image, float]:
        if self._small is None or self._small[0] != id(image):
            self._small = (id(image), *shrink(image, self.max_pixels))
        return self._small[1], self._small[2]

    def _back(self, mask: Any, image: Image.Image, scale: float) -> Any:
        return mask if scale == 1.0 else upscale(np.asarray(mask), image.height, image.width)

    def from_points(self, image, points, labels=None):
        self.check()
        small, scale = self._shrunk(image)
        scaled = [[min(x * scale, small.width - 1), min(y * scale, small.height - 1)] for x, y in points]
        return self._back(self.provider.from_points(small, scaled, labels), image, scale)

    def from_box(self, image, box):
        self.check()
        small, scale = self._shrunk(image)
        return self._back(self.provider.from_box(small, [v * scale for v in box]), image, scale)


def _client_spec(index: int, spec: Any, height: int, width: int) -> Any:
    """A checked spec as :func:`osprey.inference.regions.to_masks` takes it (PNG masks decoded)."""
    if isinstance(spec, Mapping):
        for key in ("png", "mask"):
            if key in spec:
                return decode_mask_image(spec[key], height, width, f"region {index} {key}")
        if "rle" in spec:
            return {**{k: v for k, v in spec.items() if k != "rle"}, "segmentation": spec["rle"]}
    return spec


def decode_regions(specs: Sequence[Any], image: Image.Image, provider: Any, max_regions: int,
                   check: Callable[[], None] | None = None, provider_pixels: int | None = None) -> np.ndarray:
    """``(R, H, W)`` bool masks for ``image`` from a client's region specs (already checked by
    :func:`check_specs`). Boxes and clicks run the mask provider, so this runs on the model worker;
    ``check()`` runs before each provider call (the deadline)."""
    if not specs:
        return np.zeros((0, image.height, image.width), dtype=bool)
    check_specs(specs, image.height, image.width)
    converted = [_client_spec(i, s, image.height, image.width) for i, s in enumerate(specs)]
    if check is not None or provider_pixels is not None:
        provider = CheckedProvider(provider, check, provider_pixels)
    try:
        return to_masks(converted, image.height, image.width, provider=provider, image=image, max_regions=max_regions)
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise BadRequest(f"bad region: {err}", param="regions") from None
