"""What a run reports: ``metrics.jsonl`` (one record per logged step), the progress bar,
``loss.png`` and ``summary.json`` with its :class:`RunSummary`."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RunSummary:
    stage: int
    steps: int
    first_loss: float
    final_loss: float  # mean of the last (up to) 10 logged steps
    tokens_per_s: float
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""
    final_model: str = ""

    def markdown(self) -> str:
        rows = [
            ("stage", self.stage), ("optimizer steps", self.steps), ("first loss", f"{self.first_loss:.4f}"),
            ("final loss (last 10)", f"{self.final_loss:.4f}"), ("tokens/s", f"{self.tokens_per_s:,.0f}"),
            ("wall time", f"{self.seconds:.1f} s"), ("examples used", self.data.get("examples", 0)),
            ("skipped (per reason)", self.data.get("skipped", {}) or "none"),
            ("samples truncated / turns dropped",
             f"{self.data.get('truncated_samples', 0)} / {self.data.get('dropped_turns', 0)}"),
            ("final model", self.final_model),
        ]
        return "\n".join(["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


class MetricsLog:
    """One run's metrics, from ``first_step`` (0, or the step a resumed run starts at).

    Every process keeps the numbers its summary needs; only the ``writer`` (rank 0) touches files:
    on opening it drops the lines past ``first_step`` that a killed run logged beyond its last
    checkpoint, so a resumed run's file reads as one uninterrupted run.
    """

    def __init__(self, out: Path, *, stage: int, first_step: int, total_steps: int, steps_per_epoch: int,
                 log_every: int, writer: bool, progress: bool) -> None:
        self.out, self.stage, self.step = Path(out), stage, first_step
        self.total_steps, self.steps_per_epoch, self.log_every = total_steps, steps_per_epoch, log_every
        self.writer = writer
        self.path = self.out / "metrics.jsonl"
        if writer:
            _truncate_metrics(self.path, keep_through=first_step)
        self.bar = None
        if writer and progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=first_step, desc=f"stage {stage}", unit="step")
        self.losses: list[float] = []
        self.tokens = 0
        self.start = time.perf_counter()
        self.seconds = 0.0

    def record(self, step: int, result: dict[str, float], *, lr: float, step_seconds: float) -> None:
        """One optimizer step's ``result`` (loss, grad_norm, tokens), which took ``step_seconds``."""
        self.step = step
        self.tokens += int(result["tokens"])
        self.losses.append(result["loss"])
        row = {
            "stage": self.stage, "step": step, "epoch": round(step / self.steps_per_epoch, 4),
            "loss": round(result["loss"], 6), "lr": lr,
            "grad_norm": round(result["grad_norm"], 6), "tokens": int(result["tokens"]),
            "tokens_per_s": round(result["tokens"] / step_seconds, 1),
            "seconds": round(time.perf_counter() - self.start, 3),
        }
        if not self.writer:
            return
        if step % self.log_every == 0 or step == self.total_steps:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{result['loss']:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
            self.bar.update(1)

    def stop(self) -> None:
        """End of the training steps: closes the bar and stops the clock (saving is not timed)."""
        if self.bar is not None:
            self.bar.close()
        self.seconds = time.perf_counter() - self.start

    def summarise(self, *, data: dict[str, Any], final_model: str = "") -> RunSummary:
        """The run's :class:`RunSummary`; the writer also plots ``loss.png`` and writes ``summary.json``."""
        tail = self.losses[-10:]
        summary = RunSummary(
            stage=self.stage, steps=self.step, first_loss=self.losses[0] if self.losses else math.nan,
            final_loss=float(np.mean(tail)) if tail else math.nan,
            tokens_per_s=self.tokens / self.seconds if self.seconds > 0 else 0.0, seconds=self.seconds,
            data=data, output_dir=str(self.out), final_model=final_model,
        )
        if self.writer:
            plot_metrics([self.path], self.out / "loss.png")
            (self.out / "summary.json").write_text(json.dumps(summary.__dict__, indent=2), encoding="utf-8")
        return summary


def _truncate_metrics(path: Path, keep_through: int) -> None:
    """Drop metric lines past ``keep_through`` (a killed run may have logged beyond its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= keep_through:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut by the kill
    path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(paths: list[Path], out: Path, labels: list[str] | None = None) -> Path:
    """Loss against step, one curve per metrics file (one per stage), as a PNG; ``labels`` name the
    curves (default "stage N" from the metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for k, path in enumerate(paths):
        rows = read_metrics(path)
        if not rows:
            continue
        steps = [offset + r["step"] for r in rows]
        ax.plot(steps, [r["loss"] for r in rows], label=labels[k] if labels else f"stage {rows[0]['stage']}")
        offset = steps[-1]
    ax.set_xlabel("optimizer step (stages back to back)")
    ax.set_ylabel("loss (mean CE per supervised token)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
