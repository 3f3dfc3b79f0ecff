"""SAM 2 and MobileSAM code, run once each through our providers with random weights: the model is
built from its config with random init, saved as a checkpoint in a temp folder, and loaded back by
:class:`Sam2Provider` / :class:`SamProvider` (``vit_t``); a click, a box and segment-everything run
on a small image and give image-sized boolean masks. (No real weights are reachable here.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import osprey  # noqa: F401  (installs the torchvision shim before sam2 / mobile_sam import torchvision)
from osprey.inference.providers import SAM2_CONFIGS, Sam2Provider, SamProvider, build_provider

IMAGE = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _exercise(provider) -> None:
    mask = provider.from_points(IMAGE, [[32, 24]])
    assert mask.shape == (48, 64) and mask.dtype == bool
    assert provider.from_box(IMAGE, [8, 8, 40, 30]).shape == (48, 64)
    found = provider.everything(IMAGE)
    assert all(m.shape == (48, 64) and m.dtype == bool for m in found)
    areas = [int(m.sum()) for m in found]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.slow
def test_mobilesam_vit_t_runs_from_a_random_local_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    mobile_sam = pytest.importorskip("mobile_sam", reason="the mobile_sam package (mobilesam-mirror) is not installed")
    torch.manual_seed(0)
    checkpoint = tmp_path / "mobile_sam_random.pt"
    torch.save(mobile_sam.sam_model_registry["vit_t"]().state_dict(), checkpoint)
    provider = build_provider(checkpoint, "vit_t")
    assert isinstance(provider, SamProvider) and provider.name == "sam-vit_t"
    provider.points_per_side = 4  # 16 clicks: the code path, not the quality, is under test
    provider.iou_threshold = 0.0  # random weights score low: keep every candidate so NMS runs too
    _exercise(provider)


@pytest.mark.slow
def test_sam2_hiera_t_runs_from_a_random_local_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    build = pytest.importorskip("sam2.build_sam", reason="the sam2 package is not installed")
    torch.manual_seed(0)
    checkpoint = tmp_path / "sam2.1_hiera_tiny_random.pt"
    model = build.build_sam2(SAM2_CONFIGS["sam2.1_hiera_t"], None, device="cpu")
    torch.save({"model": model.state_dict()}, checkpoint)  # the released files' layout
    provider = build_provider(checkpoint, "sam2.1_hiera_t")
    assert isinstance(provider, Sam2Provider)
    provider.points_per_side = 4
    provider.iou_threshold = 0.0
    _exercise(provider)
