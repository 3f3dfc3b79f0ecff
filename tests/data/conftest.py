"""Fixtures and warning filters for the data tests (paths live in data_fixture_paths.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import osprey  # noqa: F401  (first: installs the torchvision shim before torch-dependent libraries)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pycocotools 2.0.11 calls np.array(copy=False) on its RLE objects; numpy 2 warns on every decode.
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(item.fspath).resolve().parents:
            item.add_marker(
                pytest.mark.filterwarnings(
                    "ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"
                )
            )
