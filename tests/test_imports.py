"""``import osprey`` for inference stays light: no gradio, deepspeed, segment_anything or training."""

from __future__ import annotations

import subprocess
import sys


def test_inference_imports_do_not_pull_heavy_or_training_modules() -> None:
    code = (
        "import sys, osprey, osprey.model, osprey.inference.predictor, osprey.parity\n"
        "bad = [m for m in ('gradio', 'deepspeed', 'segment_anything', 'osprey.train')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_torchvision_imports_beside_cpu_torch() -> None:
    code = "import osprey, torchvision, timm, open_clip; from torchvision.ops import roi_align; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "ok"
