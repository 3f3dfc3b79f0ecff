"""The mask-provider interface: prompts (clicks, boxes, nothing) to ``(H, W)`` bool masks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from osprey.image import load_image
from osprey.masks import MaskError, box_pixels, check_points, pick

ImageInput = Image.Image | np.ndarray | str | Path


class ProviderError(ValueError):
    """A prompt or a configuration a provider cannot use; the message names the bad value."""


def rgb_array(image: ImageInput) -> np.ndarray:
    """``image`` as ``(H, W, 3)`` uint8 RGB."""
    return np.asarray(load_image(image), dtype=np.uint8)


def checked_points(points: Sequence[Sequence[float]], labels: Sequence[int] | None, height: int,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`osprey.masks.check_points`, its error as a :class:`ProviderError`."""
    try:
        return check_points(points, labels, height, width)
    except MaskError as err:
        raise ProviderError(str(err)) from None


def checked_box(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """:func:`osprey.masks.box_pixels` (clipped to the image, whole pixels), its error as a :class:`ProviderError`."""
    try:
        return box_pixels(box, height, width)
    except MaskError as err:
        raise ProviderError(str(err)) from None


class MaskProvider(ABC):
    """Prompts to masks. Providers are not thread-safe; the server calls them from one worker."""

    name: str = "provider"

    @abstractmethod
    def from_points(self, image: ImageInput, points: Sequence[Sequence[float]],
                    labels: Sequence[int] | None = None) -> np.ndarray:
        """``(H, W)`` bool mask of the object under the positive points (and not the negative ones)."""

    @abstractmethod
    def from_box(self, image: ImageInput, box: Sequence[float]) -> np.ndarray:
        """``(H, W)`` bool mask of the object inside ``[x0, y0, x1, y1]``."""

    @abstractmethod
    def everything(self, image: ImageInput) -> list[np.ndarray]:
        """All segments of the image, largest first."""

    @staticmethod
    def pick(masks: Sequence[np.ndarray], x: float, y: float) -> int | None:
        return pick(masks, x, y)
