"""A seeded synthetic world for region-level question answering (objects, parts, occlusion).

``generate_scene(seed, config)`` draws a scene; ``questions.build_records`` turns it into the
Osprey-724K subsets from templates; ``write_split`` writes images, COCO instances, the official
per-subset JSON files and a held-out benchmark (``eval_questions.jsonl``). Train and test seeds come
from disjoint ranges (``train_seeds`` / ``test_seeds``).
"""

from osprey.synthetic.questions import (
    ALL_SUBSETS,
    QAItem,
    RegionRef,
    SubsetRecord,
    build_records,
    eval_items,
)
from osprey.synthetic.seeds import held_out_seed, split_of_seed, test_seeds, train_seeds
from osprey.synthetic.world import Scene, SceneObject, ScenePart, WorldConfig, generate_scene, render
from osprey.synthetic.writer import OSPREY_FILES, SplitManifest, write_split

__all__ = [
    "ALL_SUBSETS",
    "OSPREY_FILES",
    "QAItem",
    "RegionRef",
    "Scene",
    "SceneObject",
    "ScenePart",
    "SplitManifest",
    "SubsetRecord",
    "WorldConfig",
    "build_records",
    "eval_items",
    "generate_scene",
    "held_out_seed",
    "render",
    "split_of_seed",
    "test_seeds",
    "train_seeds",
    "write_split",
]
