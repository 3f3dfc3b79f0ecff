"""Shared fixtures. ``import osprey`` first: it makes torchvision importable beside CPU torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import osprey  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden"


@pytest.fixture
def golden_dir() -> Path:
    if not (GOLDEN / "mask_extractor.json").exists():
        pytest.skip(f"golden data not found at {GOLDEN}")
    return GOLDEN


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
