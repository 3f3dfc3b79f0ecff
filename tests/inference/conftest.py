"""A tiny Osprey whose answers depend on the regions, the bundled coins image and its masks.

The tiny preset's LLM at its default init (std 0.02) attends almost uniformly, so every region
gets the same answer and region tests could not fail. Its weights are redrawn with std 0.2 under a
fixed seed, and the mask extractor's output layers are scaled up so region tokens are as large as
word embeddings: different masks then give different greedy answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import osprey  # (torchvision shim first; also locates the bundled assets)
from osprey.inference.predictor import EncodedImage, RegionPredictor
from osprey.inference.regions import to_masks
from tiny_models import scrambled_tiny

EXAMPLES = Path(osprey.__file__).parent / "assets" / "examples"


@pytest.fixture(scope="session")
def predictor() -> RegionPredictor:
    return RegionPredictor(*scrambled_tiny(1))


@pytest.fixture(scope="session")
def coins_path() -> Path:
    return EXAMPLES / "coins.png"


@pytest.fixture(scope="session")
def coins_record() -> dict:
    return json.loads((EXAMPLES / "coins.json").read_text())


@pytest.fixture(scope="session")
def masks(coins_record: dict) -> np.ndarray:
    """(4, 303, 384) bool: the four annotated coins."""
    specs = [region["segmentation"] for region in coins_record["regions"]]
    return to_masks(specs, coins_record["height"], coins_record["width"])


@pytest.fixture(scope="session")
def encoded(predictor: RegionPredictor, coins_path: Path) -> EncodedImage:
    return predictor.encode(coins_path)
