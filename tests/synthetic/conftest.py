from __future__ import annotations

import pytest

import osprey  # noqa: F401  (installs the torchvision shim before anything else is imported)
from osprey.synthetic import Scene, WorldConfig, generate_scene, train_seeds, write_split
from osprey.synthetic.writer import SplitManifest

SCENE_SEEDS = range(40)
SPLIT_SEEDS = train_seeds(12, start=100)


@pytest.fixture(scope="session")
def scenes() -> list[Scene]:
    """40 default scenes (256 px)."""
    return [generate_scene(seed) for seed in SCENE_SEEDS]


@pytest.fixture(scope="session")
def written_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[SplitManifest, dict[int, Scene]]:
    """A small training split on disk, with the scenes it was written from (by seed)."""
    out = tmp_path_factory.mktemp("synthetic_split")
    config = WorldConfig()
    manifest = write_split(out, SPLIT_SEEDS, config)
    return manifest, {seed: generate_scene(seed, config) for seed in SPLIT_SEEDS}
