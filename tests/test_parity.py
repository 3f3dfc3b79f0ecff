"""``osprey parity`` on the golden sets recorded from the official code (shared/golden)."""

from __future__ import annotations

import shutil
from pathlib import Path

from osprey.cli import main
from osprey.parity import Report, discover, run_parity


def test_parity_passes_every_golden_set(golden_dir: Path, capsys) -> None:
    assert main(["parity", str(golden_dir)]) == 0
    out = capsys.readouterr().out
    assert "**MISS**" not in out
    assert "| C/fp32 | greedy ids |" in out and "| A | mask_tokens |" in out and "| B | res4 |" in out


def test_parity_runs_on_a_folder_with_only_some_sets(golden_dir: Path, tmp_path: Path) -> None:
    for suffix in (".json", ".safetensors"):
        shutil.copy(golden_dir / f"mask_extractor{suffix}", tmp_path / f"set_a_copy{suffix}")
    assert [letter for letter, _, _ in discover(tmp_path)] == ["A"]
    report: Report = run_parity(tmp_path)
    assert report.ok and all(c.set == "A" for c in report.checks)


def test_parity_detects_a_wrong_output(golden_dir: Path, tmp_path: Path) -> None:
    import json

    from safetensors.torch import load_file, save_file

    meta = json.loads((golden_dir / "mask_extractor.json").read_text())
    tensors = load_file(str(golden_dir / "mask_extractor.safetensors"))
    tensors["mask_tokens"] = tensors["mask_tokens"] + 1e-3
    (tmp_path / "a.json").write_text(json.dumps(meta))
    save_file(tensors, str(tmp_path / "a.safetensors"))
    report = run_parity(tmp_path)
    assert [c.name for c in report.misses] == ["mask_tokens"]
