"""Client bytes decoded: images and region masks. Nothing here reads a file or a URL a client names.

Images and PNG masks travel as bytes (base64 or a ``data:`` URL); a string that looks like a path
or a URL is refused. Every function raises :class:`~osprey.serve.http.BadRequest` naming the bad
value and what was expected.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from osprey.inference.regions import RegionError, to_masks
from osprey.serve.http import BadRequest

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+/-]*)(?:;[\w=.-]+)*?(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


# --------------------------------------------------------------------------------------------- images


def _bytes_of(data: Any, what: str) -> bytes:
    """Bytes from base64 text or a ``data:`` URL; URLs and paths are refused (never fetched or read)."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if not isinstance(data, str) or not data:
        raise BadRequest(f"{what} is a {type(data).__name__}; expected base64 text or a data: URL")
    text = data.strip()
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://", "file:", "ftp://", "s3://")):
        raise BadRequest(f"{what} is a URL ({text[:40]!r}); this server never fetches URLs: send the bytes "
                         "as base64 or a data: URL")
    match = DATA_URL.match(text)
    if match:
        if not match.group("b64"):
            raise BadRequest(f"{what} is a data: URL without ';base64'; expected data:image/png;base64,...")
        text = match.group("data")
    elif text.startswith(("/", "./", "../", "~")) or re.match(r"^[A-Za-z]:\\", text):
        raise BadRequest(f"{what} looks like a file path ({text[:40]!r}); this server never reads paths a "
                         "client names: send the bytes as base64 or a data: URL")
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64 ({text[:24]!r}...); expected base64 image bytes or a "
                         "data: URL") from None


def _open(raw: bytes, what: str, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(raw))
        width, height = image.size  # read from the header, before any pixel is decoded
    except (OSError, Image.DecompressionBombError, ValueError) as err:
        raise BadRequest(f"{what}: {len(raw)} bytes that are not a readable image ({err}); expected PNG, "
                         "JPEG, WebP or another format Pillow reads") from None
    if width * height > max_pixels:
        raise BadRequest(f"{what} is {width}x{height} = {width * height} pixels; at most {max_pixels} are "
                         "allowed", status=413)
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, ValueError, SyntaxError) as err:
        raise BadRequest(f"{what}: the image data is truncated or corrupt ({err})") from None
    return image


def decode_image(data: Any, max_pixels: int, what: str = "image") -> Image.Image:
    """An RGB PIL image from bytes, base64 or a ``data:`` URL."""
    return _open(_bytes_of(data, what), what, max_pixels).convert("RGB")


def decode_mask_image(data: Any, height: int, width: int, what: str) -> np.ndarray:
    """A ``(height, width)`` bool mask from a PNG (or any image): alpha > 0 where there is an alpha
    channel, else any non-zero channel."""
    image = _open(_bytes_of(data, what), what, height * width + 1)
    if image.size != (width, height):
        raise BadRequest(f"{what} is {image.size[0]}x{image.size[1]}; expected the image's {width}x{height}")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return np.asarray(image.convert("RGBA"))[..., 3] > 0
    array = np.asarray(image)
    return (array.any(axis=-1) if array.ndim == 3 else array != 0).astype(bool)


# -------------------------------------------------------------------------------------------- regions

_PATH_KEYS = ("path", "file", "filename", "url", "uri")


def _client_spec(index: int, spec: Any, height: int, width: int) -> Any:
    """A client's region spec as one :func:`osprey.inference.regions.to_masks` takes, minus paths."""
    if isinstance(spec, str):
        raise BadRequest(f"region {index} is a string ({spec[:40]!r}); this server never reads paths: send a "
                         "mask as {'png': <base64>}, {'size','counts'} RLE, polygons, a box or a point")
    if not isinstance(spec, Mapping | list):
        raise BadRequest(f"region {index} is a {type(spec).__name__}; expected an object such as {{'box': "
                         "[x0, y0, x1, y1]}} or a polygon list")
    if isinstance(spec, Mapping):
        named = [k for k in _PATH_KEYS if k in spec]
        if named:
            raise BadRequest(f"region {index} names a {named[0]!r}; this server never reads paths or URLs a "
                             "client names: send the mask bytes as {'png': <base64>}")
        for key in ("png", "mask"):
            if key in spec:
                return decode_mask_image(spec[key], height, width, f"region {index} {key}")
        if "rle" in spec:
            return {**{k: v for k, v in spec.items() if k != "rle"}, "segmentation": spec["rle"]}
    return spec


def decode_regions(specs: Sequence[Any], image: Image.Image, provider: Any, max_regions: int) -> np.ndarray:
    """``(R, H, W)`` bool masks for ``image`` from a client's list of region specs (already checked by
    :func:`osprey.serve.payloads.check_region_list`). Boxes and clicks run the mask provider, so this
    runs on the model worker."""
    if not specs:
        return np.zeros((0, image.height, image.width), dtype=bool)
    converted = [_client_spec(i, s, image.height, image.width) for i, s in enumerate(specs)]
    try:
        return to_masks(converted, image.height, image.width, provider=provider, image=image, max_regions=max_regions)
    except (RegionError, ValueError, TypeError, KeyError) as err:
        raise BadRequest(f"bad region: {err}") from None
