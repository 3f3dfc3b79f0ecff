"""The fine-tune guide's script runs end to end (tiny preset, 2 steps): data -> validate -> LoRA -> eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_finetune_guide_runs_end_to_end(tmp_path):
    osprey = Path(sys.executable).with_name("osprey")
    env = {**os.environ, "OSPREY": str(osprey), "WORK": str(tmp_path), "MODEL": "tiny", "STEPS": "2",
           "IMAGES": "8", "EVAL_IMAGES": "2", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "examples/finetune_own_masks.sh"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    final = tmp_path / "run" / "final"
    assert (final / "config.json").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["data"]["examples"] > 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics  # the evaluation wrote its scores
    assert (tmp_path / "eval" / "predictions.jsonl").stat().st_size > 0
