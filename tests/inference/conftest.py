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
import torch

import osprey  # (torchvision shim first; also locates the bundled assets)
from osprey.inference.predictor import EncodedImage, RegionPredictor
from osprey.inference.regions import to_masks
from osprey.model.loading import load_model

EXAMPLES = Path(osprey.__file__).parent / "assets" / "examples"


@pytest.fixture(scope="session")
def predictor() -> RegionPredictor:
    model, tokenizer, _ = load_model("tiny", seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.language_model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
        model.mask_extractor.feat_linear.weight.mul_(10)
        model.mask_extractor.mask_linear.layers[-1].weight.mul_(10)
    return RegionPredictor(model, tokenizer)


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
