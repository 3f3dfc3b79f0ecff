"""Small benchmark files in the official formats, built from synthetic scenes (for tests and demos).

``write_fixtures(root)`` writes, next to ``images/``: ``lvis_val_1k_category.json``,
``paco_val_1k_category.json``, ``finetune_refcocog_val_with_mask.json``, ``coco_pope_random.json``
(JSON lines), ``description/{questions,prompt,answers}.json``, and COCO-panoptic files for
Cityscapes and ADE20K-150 (``*_panoptic_val.json`` + PNG folder) whose segments reuse the synthetic
objects with real class ids. Run ``python -m osprey.eval.fixtures OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from osprey.eval.openseg_classes import CLASS_LISTS
from osprey.masks import encode_rle
from osprey.synthetic.seeds import test_seeds
from osprey.synthetic.world import WorldConfig, generate_scene

CONFIG = WorldConfig(image_size=64, min_objects=2, max_objects=3)


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _panoptic(root: Path, name: str, scenes, thing_classes: list[int], stuff_class: int, num_classes: int) -> None:
    """Background = one stuff segment, each object = a thing segment of a class from ``thing_classes``."""
    png_dir = root / f"{name}_panoptic_val"
    png_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for scene in scenes:
        ids = np.zeros((scene.height, scene.width), dtype=np.int64)
        segments = []
        covered = np.zeros_like(ids, dtype=bool)
        for k, obj in enumerate(scene.objects):
            seg_id = 1000 + k
            ids[obj.mask] = seg_id
            covered |= obj.mask
            segments.append({"id": seg_id, "category_id": thing_classes[k % len(thing_classes)], "iscrowd": 0})
        ids[~covered] = 7
        segments.append({"id": 7, "category_id": stuff_class, "iscrowd": 0})
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
        png = f"{scene.seed:012d}.png"
        Image.fromarray(rgb).save(png_dir / png)
        images.append({"id": scene.seed, "file_name": f"{scene.seed:012d}.png", "height": scene.height,
                       "width": scene.width})
        annotations.append({"image_id": scene.seed, "file_name": png, "segments_info": segments})
    categories = [{"id": k, "name": str(k), "isthing": int(CLASS_LISTS[name][1][k])} for k in range(num_classes)]
    _dump(root / f"{name}_panoptic_val.json", {"images": images, "annotations": annotations, "categories": categories})


def write_fixtures(root: str | Path, *, images: int = 2, seed: int = 900) -> Path:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    scenes = [generate_scene(s, CONFIG) for s in test_seeds(images, seed)]
    for scene in scenes:
        Image.fromarray(scene.image).save(root / "images" / f"{scene.seed:012d}.png")

    def name(scene) -> str:
        return f"{scene.seed:012d}.png"

    lvis = [{"file_name": name(s), "height": s.height, "width": s.width,
             "categories": [o.category.replace(" ", "_") for o in s.objects],
             "annotations": [{"segmentation": encode_rle(o.mask)} for o in s.objects]} for s in scenes]
    _dump(root / "lvis_val_1k_category.json", lvis)
    paco = [{"file_name": name(s), "height": s.height, "width": s.width,
             "categories": [f"{o.category}:{p.name}" for o in s.objects for p in o.visible_parts[:1]],
             "annotations": [{"segmentation": encode_rle(p.mask)} for o in s.objects for p in o.visible_parts[:1]]}
            for s in scenes]
    _dump(root / "paco_val_1k_category.json", paco)

    ref_images, ref_anns = [], []
    for s in scenes:
        for o in s.objects:
            entry_id = s.seed * 10 + o.id
            ref_images.append({"id": entry_id, "file_name": f"COCO_train2014_{name(s)}", "height": s.height,
                               "width": s.width, "caption": f"the {o.colour} {o.category}"})
            ref_anns.append({"id": entry_id, "image_id": entry_id, "segmentation": encode_rle(o.mask),
                             "bbox": [0, 0, 1, 1], "category_id": 1})
    _dump(root / "finetune_refcocog_val_with_mask.json",
          {"images": ref_images, "annotations": ref_anns, "categories": [{"id": 1, "name": "object"}]})

    pope = []
    for s in scenes:
        present = sorted({o.category for o in s.objects})
        absent = sorted(set(CONFIG.categories) - set(present))[:1]
        for cat, label in [(c, "yes") for c in present] + [(c, "no") for c in absent]:
            pope.append({"question_id": len(pope) + 1, "image": name(s), "text": f"Is there a {cat} in the image?",
                         "label": label})
    (root / "coco_pope_random.json").write_text("\n".join(json.dumps(q) for q in pope) + "\n")

    questions, prompts, answers = [], [], []
    for s in scenes:
        o = s.objects[0]
        poly = encode_rle(o.mask)
        qid = len(questions)
        questions.append({"question_id": qid, "image": name(s), "category": "description",
                          "text": "Could you describe the region shown as <region> in the picture in great detail?",
                          "annotation": {"bbox": [0, 0, 1, 1], "segmentation": poly}})
        prompts.append({"question_id": qid, "image": name(s), "category": "description",
                        "prompt": "Several descriptions of this image:\n" + ", ".join(ob.category for ob in s.objects)})
        answers.append({"question_id": qid, "image": name(s), "category": "description",
                        "text": f"A {o.size} {o.colour} {o.category}."})
    _dump(root / "description" / "questions.json", questions)
    _dump(root / "description" / "prompt.json", prompts)
    _dump(root / "description" / "answers.json", answers)

    _panoptic(root, "cityscapes", scenes, [13, 11, 18], 0, 19)  # car, person, bicycle; road
    _panoptic(root, "ade20k", scenes, [19, 20, 12], 3, 150)  # chair, car, person; floor
    return root


if __name__ == "__main__":
    print(write_fixtures(sys.argv[1] if len(sys.argv) > 1 else "outputs/eval_fixtures"))
