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


def test_greedy_rule_accepts_any_id_tied_with_the_top1_and_stops_there() -> None:
    from osprey.golden import judge_greedy, tied_ids

    step = {"ids": [5, 6, 7, 8, 9], "values": [3.0, 2.984375, 2.984375, 2.9, 2.5]}
    assert tied_ids(step, 0.015625, 0.02) == [5, 6, 7]  # the 2nd and 3rd values are equal in bf16
    assert tied_ids(step, 0.015625, 1e-3) is None  # a clear step under the fp32 tau
    result = {"generated_ids": [1, 5, 11], "step_top1_minus_top2": [0.5, 0.015625, 0.3],
              "step_top5": [{"ids": [1, 2, 3, 4, 0], "values": [1, 0.5, 0.4, 0.3, 0.2]}, step,
                            {"ids": [11, 2, 3, 4, 0], "values": [1, 0.7, 0.4, 0.3, 0.2]}]}
    third = judge_greedy([1, 7, 99], result, 0.02)
    assert third.passed and third.compared == 2  # later steps are not compared
    assert not judge_greedy([1, 8, 11], result, 0.02).passed  # 8 is 0.1 below the top-1
    assert not judge_greedy([2, 5, 11], result, 0.02).passed  # a clear step must match exactly
    assert judge_greedy([1, 5, 11], result, 0.02).passed


def test_parity_on_golden_sets_made_from_other_inputs(tmp_path: Path, capsys) -> None:
    """Sets in the format with masks of a type the tool does not rebuild (circle), other shapes,
    sizes, regions and prompts, and a three-way bf16 tie: ``osprey parity`` passes on them."""
    from golden_factory import write_set_a, write_set_c

    for seed in (1, 2):
        write_set_a(tmp_path, seed)
    write_set_c(tmp_path, 3)
    assert main(["parity", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "**MISS**" not in out
    assert out.count("not rebuilt: mask type(s) 'circle'") == 3
    assert "among the tied ids" in out and "| C/fp32 | greedy ids |" in out


def test_parity_still_cross_checks_masks_of_known_types(tmp_path: Path) -> None:
    import json

    from golden_factory import write_set_a

    write_set_a(tmp_path, 4)
    meta = json.loads((tmp_path / "factory_a_4.json").read_text())
    meta["input_spec"]["masks"] = [{"type": "rect", "x0": 0, "x1": 5, "y0": 0, "y1": 5}] * 4  # not the stored masks
    (tmp_path / "factory_a_4.json").write_text(json.dumps(meta))
    assert [c.name for c in run_parity(tmp_path).misses] == ["input masks rebuilt from input_spec"]
