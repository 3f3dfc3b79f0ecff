"""``osprey label`` end to end with the tiny model on a folder of synthetic images (GrabCut
segment-everything): one line per region, deterministic, SIGKILL then rerun loses and repeats
nothing, and two processes under torchrun (gloo, CPU) merge to one process's file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--model", "tiny", "--device", "cpu", "--max-new-tokens", "6", "--detailed-max-new-tokens", "10",
         "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def _osprey(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "osprey", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300, **kw)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    done = _osprey("data", "synth", str(root), "--images", "3")
    assert done.returncode == 0, done.stderr
    return root / "images"


@pytest.fixture(scope="module")
def clean(images: Path, tmp_path_factory) -> list[dict]:
    """One uninterrupted single-process run: the reference every other run must equal."""
    out = tmp_path_factory.mktemp("clean")
    done = _osprey("label", str(images), "--out", str(out), *FLAGS)
    assert done.returncode == 0, done.stderr
    assert "0 already written" in done.stderr
    return _lines(out / "labels-rank0.jsonl")


def test_one_line_per_region_with_every_field(clean: list[dict], images: Path) -> None:
    keys = [(r["image"], r["index"]) for r in clean]
    assert len(keys) == len(set(keys)) >= 10
    assert keys == sorted(keys)  # one process writes in (image, index) order: the merged order
    assert {r["image"] for r in clean} == {p.name for p in images.iterdir()}
    for image in {r["image"] for r in clean}:
        rows = [r for r in clean if r["image"] == image]
        assert [r["index"] for r in rows] == list(range(rows[0]["regions_in_image"]))
        assert [r["region"] for r in rows] == [r["index"] + 1 for r in rows]
    first = clean[0]
    assert set(first) >= {"image", "region", "rle", "box", "area", "short", "detailed", "model", "options"}
    assert first["model"] == "tiny" and first["source"] == "everything:grabcut"
    assert first["options"]["short"]["max_new_tokens"] == 6 and first["options"]["detailed"]["max_new_tokens"] == 10
    assert first["rle"]["size"] == [256, 256] and len(first["box"]) == 4 and first["area"] > 0
    assert all(isinstance(r["short"], str) and isinstance(r["detailed"], str) for r in clean)


def test_a_rerun_after_sigkill_answers_no_region_twice_and_loses_none(images: Path, clean: list[dict],
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "killed"
    victim = subprocess.Popen([sys.executable, "-m", "osprey", "label", str(images), "--out", str(out), *FLAGS,
                               "--batch-regions", "2"], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    shard = out / "labels-rank0.jsonl"
    deadline = time.time() + 240
    while not shard.exists() or shard.read_bytes().count(b"\n") < 4:
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    written = shard.read_bytes().count(b"\n")
    assert 4 <= written < len(clean)
    with shard.open("ab") as f:  # and as if the kill had landed inside a write()
        f.write(b'{"image": "000000000002.png", "index": 3, "sho')
    rerun = _osprey("label", str(images), "--out", str(out), *FLAGS, "--batch-regions", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{written} already written" in rerun.stderr and "cut a torn last line" in rerun.stderr
    got = _lines(shard)
    keys = [(r["image"], r["index"]) for r in got]
    assert len(keys) == len(set(keys))  # no region answered twice
    assert sorted(got, key=lambda r: (r["image"], r["index"])) == clean  # none lost; same answers


def test_two_processes_under_torchrun_merge_to_one_process_s_lines(images: Path, clean: list[dict],
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "two"
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
         "-m", "osprey", "label", str(images), "--out", str(out), *FLAGS],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    parts = [_lines(out / f"labels-rank{r}.jsonl") for r in (0, 1)]
    assert all(parts) and not {r["image"] for r in parts[0]} & {r["image"] for r in parts[1]}
    merged = _osprey("label-merge", str(out))
    assert merged.returncode == 0, merged.stderr
    assert _lines(out / "labels.jsonl") == clean
