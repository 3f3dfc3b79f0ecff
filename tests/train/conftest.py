"""A small synthetic world (64 px) shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from osprey.synthetic import WorldConfig
from osprey.synthetic.writer import train_seeds, write_split


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_split(out, train_seeds(12), WorldConfig(image_size=64, min_objects=2, max_objects=4))
    return out
