"""bench/describe_all.py runs end to end (tiny preset) and keeps the benchmark conventions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "describe_all.py"


def test_describe_all_tiny_with_phases():
    run = subprocess.run(
        [sys.executable, str(BENCH), "--preset", "tiny", "--regions", "1,2,8", "--max-new-tokens", "3",
         "--repeats", "1", "--phases"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert lines[-1].startswith("RESULT speedup_n8=")  # the last line, after the phase table
    keys = dict(part.split("=") for part in lines[-1].split()[1:])
    assert set(keys) == {"speedup_n8", "n8_over_n1", "cpu_speedup_n8", "cpu_n8_over_n1"}
    assert all(float(value) > 0 for value in keys.values())
    assert sum("answers identical" in line for line in lines) == 3  # N = 1, 2, 8 checked
    phase_rows = [line.split("|")[1:-1] for line in lines if line.startswith("|") and len(line.split("|")) == 11]
    by_n = {int(cells[0]): cells for cells in phase_rows if cells[0].strip().isdigit()}
    assert sorted(by_n) == [1, 2, 8]
    # prefill tokens grow with N (one packed prefill: the shared prefix once, each region's own tail)
    tokens = [int(by_n[n][2]) for n in (1, 2, 8)]
    assert tokens[0] < tokens[1] < tokens[2]
    tail = tokens[1] - tokens[0]
    assert tokens[2] - tokens[0] == 7 * tail
    assert all(int(by_n[n][4]) == 2 for n in (1, 2, 8))  # 3 new tokens: 1 from the prefill, 2 decoding steps
    assert float(by_n[1][7]) == 1.0 and float(by_n[1][8]) == 1.0
