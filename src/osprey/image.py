"""Image preprocessing, exactly as every official Osprey caller does it (osprey-official.md §1.3).

1. RGB; resize the short side to ``size`` with PIL bicubic (long side ``int(long * size / short)``),
   no centre crop;
2. scale by 1/255 and normalise with the CLIP mean/std of the config;
3. squash to ``size`` x ``size`` with bilinear interpolation (align_corners=False): the aspect ratio
   is NOT kept, and the region masks, left at the original resolution, get the same stretch when
   they are resized to feature size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from osprey.config import CLIP_MEAN, CLIP_STD


def load_image(source: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """A PIL RGB image from a path, a PIL image or an (H, W, 3) uint8 array."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        if source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8:
            raise ValueError(f"image array must be (H, W, 3) uint8, got {source.shape} {source.dtype}")
        return Image.fromarray(source)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except OSError as err:
        raise ValueError(f"{path} is not a readable image: {err}") from None


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width <= height:
        new = (size, int(height * size / width))
    else:
        new = (int(width * size / height), size)
    return image.resize(new, resample=Image.Resampling.BICUBIC)


def normalise(image: Image.Image, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """(3, H, W) float32: pixels / 255, then (x - mean) / std per channel."""
    array = np.asarray(image, dtype=np.float32) * np.float32(1 / 255)
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def preprocess_before_squash(image: Image.Image, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    return normalise(resize_short_side(image.convert("RGB"), size), mean, std)


def preprocess(image: Image.Image | str | Path | np.ndarray, size: int = 512, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """Official Osprey preprocessing: (3, size, size) float32 pixel values."""
    before = preprocess_before_squash(load_image(image), size, mean, std)
    return F.interpolate(before[None], size=(size, size), mode="bilinear", align_corners=False)[0]
