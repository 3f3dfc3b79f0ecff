"""Shared fixtures for the serving tests: one tiny random-init service (loaded once), a test picture."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def picture() -> np.ndarray:
    """48x64 dark image with a red square (10..30) and a green bar."""
    image = np.full((48, 64, 3), 30, dtype=np.uint8)
    image[10:30, 10:30] = [200, 30, 30]
    image[5:40, 45:55] = [30, 200, 30]
    return image


@pytest.fixture(scope="session")
def tiny_service():
    from osprey.serve.service import load_service

    return load_service("tiny", max_regions=8)
