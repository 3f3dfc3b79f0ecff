"""An LRU of encoded images and prefix K/V, bounded in bytes, keyed by the image's content.

Repeated requests about one image (web-demo clicks, chat turns, ``/v1/describe`` then
``/v1/chat/completions``) skip the vision tower, and where their prompt prefix (system prompt,
image tokens, text up to the first region) is the same, its prefill too. An image's key is a hash
of its pixels, size and mode (:func:`image_key`); a prefix's key adds the hash of its token ids.
Entries larger than the whole budget are not kept. Safe to use from several threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from osprey.inference.batch import EncodedImage
from osprey.model.continuous import PrefixKV


def image_key(image: Image.Image) -> str:
    """The content hash of an image: its pixels, size and mode (not its file name or format)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def prefix_key(image: str, ids: torch.Tensor | Sequence[int]) -> str:
    values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    return image + ":" + hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()


def nbytes(value: EncodedImage | PrefixKV) -> int:
    if isinstance(value, PrefixKV):
        return value.nbytes
    return sum(t.nbytes for t in value.levels) + value.image_tokens.nbytes


class EncodingCache:
    """Encoded images and prefix K/V, least recently used dropped first once over ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: expected >= 0 (0 turns the cache off)")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.counts = {"image_hits": 0, "image_misses": 0, "prefix_hits": 0, "prefix_misses": 0}

    def image(self, key: str) -> EncodedImage | None:
        return self._get(("image", key))

    def put_image(self, key: str, encoded: EncodedImage) -> None:
        self._put(("image", key), encoded)

    def prefix(self, key: str) -> PrefixKV | None:
        return self._get(("prefix", key))

    def put_prefix(self, key: str, kv: PrefixKV) -> None:
        self._put(("prefix", key), kv)

    @property
    def bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, Any]:
        """What ``/healthz`` shows: bytes held and allowed, entries, hits and misses, hit rates."""
        with self._lock:
            counts = dict(self.counts)
            entries = {"images": sum(k[0] == "image" for k in self._entries),
                       "prefixes": sum(k[0] == "prefix" for k in self._entries)}
            held = self._bytes

        def rate(kind: str) -> float | None:
            asked = counts[f"{kind}_hits"] + counts[f"{kind}_misses"]
            return None if not asked else round(counts[f"{kind}_hits"] / asked, 4)

        return {"bytes": held, "max_bytes": self.max_bytes, **entries, **counts,
                "image_hit_rate": rate("image"), "prefix_hit_rate": rate("prefix")}

    def _get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            self.counts[f"{key[0]}_{'hits' if entry is not None else 'misses'}"] += 1
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _put(self, key: tuple[str, str], value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
