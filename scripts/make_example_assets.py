"""Rebuild the bundled examples in src/osprey/assets/examples/.

``scene.*``: a held-out synthetic-world scene (test seed 7, never a training seed) with every
object's visible mask: what the bundled osprey-small model knows, and the default of ``osprey describe``.

``coins.*``: scikit-image's coins photo (a real photo; the bundled model was not trained on photos).

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


def write_scene(seed: int = 7) -> None:
    from osprey.synthetic import generate_scene
    from osprey.synthetic.seeds import test_seeds

    (scene_seed,) = test_seeds(1, seed)
    scene = generate_scene(scene_seed)
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image).save(OUT / "scene.png", optimize=True)
    regions = []
    for obj in sorted(scene.objects, key=lambda o: o.centroid[0]):  # left to right
        rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
        regions.append({"segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                        "area": int(obj.area),
                        "truth": {"category": obj.category, "colour": obj.colour, "texture": obj.texture,
                                  "size": obj.size}})
    meta = {"image": "scene.png", "height": scene.image.shape[0], "width": scene.image.shape[1],
            "source": f"osprey synthetic world, held-out test seed {scene_seed}", "regions": regions}
    (OUT / "scene.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {OUT / 'scene.png'}: {len(regions)} regions")


def main() -> None:
    write_scene()
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
