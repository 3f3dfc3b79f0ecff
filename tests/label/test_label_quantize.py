"""``osprey label --quantize int8``: the model runs with int8 weights (torchao, CPU) and every line
says so; a folder labelled unquantized does not resume under int8 (the answers would differ)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from osprey.cli import main

FLAGS = ["--model", "tiny", "--device", "cpu", "--max-new-tokens", "4", "--detailed-max-new-tokens", "4",
         "--no-progress", "--limit", "1"]


@pytest.fixture(scope="module")
def instances(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    assert main(["data", "synth", str(root), "--images", "1", "--no-progress"]) == 0
    return root / "annotations" / "instances.json"


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "labels-rank0.jsonl").read_text().splitlines()]


def test_int8_is_used_and_recorded_in_every_line(instances: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torchao", reason="--quantize needs torchao")
    quantized, plain = tmp_path / "int8", tmp_path / "none"
    assert main(["label", str(instances), "--out", str(quantized), "--quantize", "int8", *FLAGS]) == 0
    assert main(["label", str(instances), "--out", str(plain), *FLAGS]) == 0
    lines, reference = _lines(quantized), _lines(plain)
    assert len(lines) == len(reference) >= 2
    assert {r["quantize"] for r in lines} == {"int8"} and {r["quantize"] for r in reference} == {"none"}
    assert all(isinstance(r["short"], str) and isinstance(r["detailed"], str) for r in lines)
    assert [(r["image"], r["index"]) for r in lines] == [(r["image"], r["index"]) for r in reference]
    with pytest.raises(SystemExit, match=r"other settings.*quantize"):
        main(["label", str(instances), "--out", str(plain), "--quantize", "int8", *FLAGS])
    capsys.readouterr()


def test_lines_written_before_the_field_existed_resume_as_unquantized(instances: Path, tmp_path: Path) -> None:
    out = tmp_path / "legacy"
    assert main(["label", str(instances), "--out", str(out), *FLAGS]) == 0
    shard = out / "labels-rank0.jsonl"
    old = [{k: v for k, v in r.items() if k != "quantize"} for r in _lines(out)]
    shard.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert main(["label", str(instances), "--out", str(out), *FLAGS]) == 0  # nothing new to answer
    assert len(_lines(out)) == len(old)
