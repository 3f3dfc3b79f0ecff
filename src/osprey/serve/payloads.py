"""What clients send, checked and decoded: images, region specs, question text, chat messages.

Every function raises :class:`BadRequest` with a message that names the bad value and what was
expected; the API turns it into a 4xx. Nothing here reads a file or a URL a client names: images
and PNG masks travel as bytes (base64 or a ``data:`` URL), and a string that looks like a path or
a URL is refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from osprey.inference.regions import RegionError, to_masks
from osprey.text.conversation import Turn


class BadRequest(ValueError):
    """Malformed client input; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# The official prompt syntax: a typed "<mask>" or "<pos>" would become a feature slot (and crash the
# official code: ids 32000/32001 lie outside the embedding). "<image>" would add a second image slot.
# We refuse them instead of guessing: regions are named <region1>, <region2>, ... in text.
RESERVED = re.compile(r"<\s*(mask|pos|image)\s*>", re.IGNORECASE)
REGION_REF = re.compile(r"<region(\d+)>")
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


def decode_regions(specs: Any, image: Image.Image, provider: Any, max_regions: int) -> np.ndarray:
    """``(R, H, W)`` bool masks for ``image`` from a client's list of region specs."""
    if specs is None:
        return np.zeros((0, image.height, image.width), dtype=bool)
    if not isinstance(specs, list):
        raise BadRequest(f"regions is a {type(specs).__name__}; expected a list of region specs")
    if len(specs) > max_regions:
        raise BadRequest(f"{len(specs)} regions given; at most {max_regions} per request are allowed")
    converted = [_client_spec(i, s, image.height, image.width) for i, s in enumerate(specs)]
    try:
        return to_masks(converted, image.height, image.width, provider=provider, image=image, max_regions=max_regions)
    except (RegionError, ValueError, TypeError, KeyError) as err:
        raise BadRequest(f"bad region: {err}") from None


# ----------------------------------------------------------------------------------------------- text


def check_text(text: Any, num_regions: int, what: str = "question") -> str:
    """The text, if it names only regions that exist and holds no reserved slot token."""
    if not isinstance(text, str):
        raise BadRequest(f"{what} is a {type(text).__name__}; expected a string")
    if "\x00" in text:
        raise BadRequest(f"{what} contains a NUL character; expected plain text")
    reserved = RESERVED.search(text)
    if reserved:
        raise BadRequest(f"{what} contains {reserved.group(0)!r}: the official '<mask><pos>' and '<image>' "
                         "slots cannot be typed; refer to regions as <region1>, <region2>, ... (the image is "
                         "always given)")
    for number in (int(n) for n in REGION_REF.findall(text)):
        if not 1 <= number <= num_regions:
            raise BadRequest(f"{what} refers to <region{number}> but {num_regions} region(s) were given; "
                             f"expected <region1>..<region{num_regions}>" if num_regions else
                             f"{what} refers to <region{number}> but no region was given")
    return text


# ---------------------------------------------------------------------------------- chat completions


@dataclass
class ChatRequest:
    image: Image.Image
    region_specs: list[Any]  # in <regionK> order: top-level "regions", then parts in message order
    history: list[Turn]  # earlier turns (user, assistant, ...)
    question: str  # the last user message's text


def _parts(content: Any, where: str) -> list[Mapping]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content is a {type(content).__name__}; expected a string or a list of parts")
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or "type" not in part:
            raise BadRequest(f"{where}.content[{j}] is not an object with a 'type'; expected "
                             "{'type': 'text'|'image_url'|'region', ...}")
    return content


def parse_chat(body: Mapping, max_messages: int, max_pixels: int) -> ChatRequest:
    """Split OpenAI-style messages into the image, region specs, history and the question.

    The first ``image_url`` part is the image; every later ``image_url`` part is a region mask
    (alpha channel or non-zero pixels); ``{"type": "region", "region": {...}}`` parts and the
    top-level ``regions`` list carry RLE, polygons, boxes or points. System messages are ignored:
    the model answers under the system prompt it was trained with.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages is missing or empty; expected a list of {'role', 'content'} objects")
    if len(messages) > max_messages:
        raise BadRequest(f"{len(messages)} messages; at most {max_messages} are allowed")
    image_data = None
    specs: list[Any] = list(body.get("regions") or [])
    if not isinstance(body.get("regions") or [], list):
        raise BadRequest(f"regions is a {type(body.get('regions')).__name__}; expected a list of region specs")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise BadRequest(f"{where} is a {type(message).__name__}; expected an object with role and content")
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}.role is {role!r}; expected 'system', 'user' or 'assistant'")
        texts = []
        for j, part in enumerate(_parts(message.get("content"), where)):
            kind = part["type"]
            if kind == "text":
                texts.append(part.get("text"))
            elif kind == "image_url" and role == "user":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, Mapping) else url
                if image_data is None:
                    image_data = url
                else:
                    specs.append({"png": url})
            elif kind == "region" and role == "user":
                specs.append(part.get("region"))
            else:
                raise BadRequest(f"{where}.content[{j}] has type {kind!r} in a {role} message; expected 'text' "
                                 "(or 'image_url' / 'region' in user messages)")
        if not all(isinstance(t, str) for t in texts):
            raise BadRequest(f"{where}: a text part has no string 'text'")
        turns.append(Turn(role, "\n".join(texts)))
    if not turns or turns[-1].role != "user":
        raise BadRequest("the last non-system message must be from the user (the question to answer)")
    for a, b in itertools.pairwise(turns):
        if a.role == b.role:
            raise BadRequest(f"two {a.role} messages in a row; expected user and assistant turns to alternate")
    if turns[0].role != "user":
        raise BadRequest("the first non-system message must be from the user")
    if image_data is None:
        raise BadRequest("no image: put the picture in the first user message as an image_url part "
                         "(data:image/png;base64,...)")
    image = decode_image(image_data, max_pixels)
    return ChatRequest(image=image, region_specs=specs, history=turns[:-1], question=turns[-1].text)


def check_turns(turns: Sequence[Turn], num_regions: int) -> None:
    for k, turn in enumerate(turns):
        if turn.role == "user":
            check_text(turn.text, num_regions, f"message {k + 1}")
        elif RESERVED.search(turn.text):
            raise BadRequest(f"assistant message {k + 1} contains {RESERVED.search(turn.text).group(0)!r}; "
                             "slot tokens cannot appear in text")
