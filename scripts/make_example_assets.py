"""Rebuild the bundled example (src/osprey/assets/examples/coins.*) from scikit-image's coins photo.

The photo is public domain (scikit-image ``data.coins``, Greek coins from Pompeii, Brooklyn Museum).
Region masks: Otsu threshold, small holes filled, connected components; the four largest coins
not touching the border (the bright top edge is background).
Stored as COCO compressed RLE in ``coins.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from skimage import data, filters

OUT = Path(__file__).resolve().parents[1] / "src" / "osprey" / "assets" / "examples"


def main() -> None:
    gray = data.coins()
    binary = ndimage.binary_fill_holes(gray > filters.threshold_otsu(gray))
    binary = ndimage.binary_opening(binary, iterations=2)
    labels, count = ndimage.label(binary)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    areas = ndimage.sum(binary, labels, index=range(1, count + 1))
    coins = [int(i) + 1 for i in np.argsort(areas)[::-1] if int(i) + 1 not in border]
    keep = coins[:4]  # the four largest coins that do not touch the border
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.stack([gray] * 3, -1)).save(OUT / "coins.png", optimize=True)
    regions = []
    for label in sorted(keep, key=lambda k: tuple(np.argwhere(labels == k).mean(0) // 60)):
        rle = mask_utils.encode(np.asfortranarray((labels == label).astype(np.uint8)))
        regions.append({"segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                        "area": int((labels == label).sum())})
    meta = {"image": "coins.png", "height": int(gray.shape[0]), "width": int(gray.shape[1]),
            "source": "scikit-image data.coins (public domain)", "regions": regions}
    (OUT / "coins.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {OUT}: {len(regions)} regions")


if __name__ == "__main__":
    main()
