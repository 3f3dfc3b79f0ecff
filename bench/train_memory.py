"""Peak memory per process of a training step of the 7B-shaped model: DDP vs FSDP2, 2 CPU processes.

    python bench/train_memory.py [--preset osprey_7b_1layer] [--steps 2] [--full-finetune]

Each configuration runs as its own ``torch.distributed.run --nproc_per_node 2`` job (gloo) of the
real training loop (:class:`osprey.train.loop.Trainer`: stage 3 with LoRA on the LLM, the mask
extractor and projector trained in full, the vision tower frozen; ``--full-finetune``: the whole
LLM trained, as Osprey's stage 3 does, which needs about 10 GiB per DDP process for the 1-layer
shape: more than this shared 23 GiB machine can give two processes; batch 1 per process, synthetic
images at the preset's 512 px). After set-up (model built, sharded, optimizer made) each process
resets its peak resident set (``/proc/self/clear_refs`` = 5, which resets ``VmHWM``), runs the
optimizer steps and reads ``VmHWM``: the peak RSS of the step itself, all of it (Python, torch,
weights, gradients, optimizer state, activations, gloo buffers). Both ranks are reported; the table
shows the larger. ``MALLOC_MMAP_THRESHOLD_`` is fixed at 128 KiB so glibc returns freed tensors to
the system at once (its default raises the threshold after the first large free and keeps freed
memory in the heap, which would show memory no tensor holds). Each phase of each step (forward,
backward with gradient clipping, optimizer step, the rest) gets its own peak: ``VmHWM`` is read and
reset at the boundaries (a forward hook on the model, step pre/post hooks on the optimizer). Also
printed: the set-up peak (``ru_maxrss`` before the first reset), which for FSDP includes building
the full model on every rank before sharding (meta-device initialisation, not done here, would
remove that).

The last line is ``RESULT fsdp_over_ddp=<FSDP step peak / DDP step peak>`` (float32 weights both).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {  # name -> (sharding, frozen_dtype)
    "DDP, float32": ("none", "float32"),
    "FSDP2, float32": ("fsdp", "float32"),
    "DDP, bf16 frozen": ("none", "bfloat16"),
    "FSDP2, bf16 frozen": ("fsdp", "bfloat16"),
}


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class PhaseMeter:
    """Per phase of a step: the RSS at its end and the peak RSS during it (``VmHWM``, reset at each mark)."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int, int]] = []  # (phase, RSS at its end, peak during it)

    def reset(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def mark(self, phase: str) -> None:
        self.phases.append((phase, _vm("VmRSS"), _vm("VmHWM")))
        self.reset()


def worker(args: argparse.Namespace) -> None:
    """One rank: set up the loop, reset the peak, run the steps, write the peaks."""
    sys.path.insert(0, str(REPO / "tests" / "train"))
    from train_helpers import entries

    from osprey.train.config import load_config
    from osprey.train.distributed import raw_optimizer
    from osprey.train.loop import Trainer

    cfg = load_config(None, base={
        "stage": 3, "model": args.preset, "data": entries("osprey_short_form"), "data_root": args.world,
        "output_dir": args.out, "batch_size": 1, "max_steps": args.steps, "lr": 1e-4, "progress": False,
        "lora": None if args.full_finetune else {"r": 16}, "sharding": args.sharding, "frozen_dtype": args.frozen_dtype, "seed": 0,
        "max_length": 2048,
    })  # fmt: skip
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.setup()
    trainer.model.train()
    trainer.model.vision_encoder.eval()
    setup_rss = _vm("VmRSS")
    setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    meter = PhaseMeter()
    trainer.ddp_model.register_forward_hook(lambda *_: meter.mark("forward"))
    optimizer = raw_optimizer(trainer.optimizer)
    optimizer.register_step_pre_hook(lambda *_: meter.mark("backward"))  # backward + gradient clipping
    optimizer.register_step_post_hook(lambda *_: meter.mark("optimizer step"))
    meter.reset()
    losses = []
    for step in range(args.steps):
        losses.append(trainer.train_step(step)["loss"])
        meter.mark("rest")  # zero_grad, the loss all-reduce
    step_hwm = max(peak for _, _, peak in meter.phases)
    result = {"rank": trainer.rank, "step_peak": step_hwm, "setup_rss": setup_rss, "setup_peak": setup_peak,
              "losses": losses, "phases": meter.phases}
    Path(args.out, f"memory-rank{trainer.rank}.json").write_text(json.dumps(result))


def run_config(name: str, args: argparse.Namespace, world: Path, root: Path, port: int) -> list[dict]:
    sharding, frozen = CONFIGS[name]
    out = root / name.replace(" ", "_").replace(",", "")
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           __file__, "--worker", "--preset", args.preset, "--steps", str(args.steps), "--world", str(world),
           "--out", str(out), "--sharding", sharding, "--frozen-dtype", frozen,
           *(["--full-finetune"] if args.full_finetune else [])]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return [json.loads((out / f"memory-rank{r}.json").read_text()) for r in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="osprey_7b_1layer")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--full-finetune", action="store_true", help="train the whole LLM (no LoRA)")
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=list(CONFIGS),
                        help="a subset to run (the RESULT line needs both float32 rows)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--sharding", help=argparse.SUPPRESS)
    parser.add_argument("--frozen-dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from osprey.synthetic import WorldConfig
    from osprey.synthetic.writer import train_seeds, write_split

    gib = 1024**3
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        write_split(world, train_seeds(4), WorldConfig(image_size=128, min_objects=2, max_objects=3))
        rows = {}
        for i, name in enumerate(args.configs):
            rows[name] = run_config(name, args, world, Path(tmp), 29650 + i)
            print(f"{name}: done", file=sys.stderr, flush=True)
    what = "the whole LLM" if args.full_finetune else "LoRA r=16 on the LLM"
    print(f"Training step of {args.preset} (stage 3, {what}; mask extractor + projector trained), "
          f"2 CPU processes (gloo), batch 1 per process, {args.steps} optimizer steps\n")
    print("| configuration | step peak RSS / process (GiB) | rank 0 / rank 1 | RSS after set-up | "
          "set-up peak | losses (rank 0) |")
    print("|---|---:|---:|---:|---:|---|")
    for name, ranks in rows.items():
        peak = max(r["step_peak"] for r in ranks)
        print(f"| {name} | {peak / gib:.2f} | {ranks[0]['step_peak'] / gib:.2f} / {ranks[1]['step_peak'] / gib:.2f} | "
              f"{max(r['setup_rss'] for r in ranks) / gib:.2f} | {max(r['setup_peak'] for r in ranks) / gib:.2f} | "
              f"{', '.join(f'{x:.4f}' for x in ranks[0]['losses'])} |")
    print("\nPer phase (the larger rank; GiB): peak during the phase / RSS at its end\n")
    names = list(rows)
    print("| step | phase | " + " | ".join(names) + " |")
    print("|---:|---|" + "---:|" * len(names))
    phases = rows[names[0]][0]["phases"]
    per_step = len(phases) // args.steps
    for i, (phase, _, _) in enumerate(phases):
        cells = []
        for name in names:
            peak = max(r["phases"][i][2] for r in rows[name])
            end = max(r["phases"][i][1] for r in rows[name])
            cells.append(f"{peak / gib:.2f} / {end / gib:.2f}")
        print(f"| {i // per_step + 1} | {phase} | " + " | ".join(cells) + " |")
    step_peak = {name: max(r["step_peak"] for r in ranks) for name, ranks in rows.items()}
    if "DDP, float32" not in step_peak or "FSDP2, float32" not in step_peak:
        return
    if "FSDP2, bf16 frozen" in step_peak:
        print(f"\nFSDP2 bf16-frozen over DDP float32: {step_peak['FSDP2, bf16 frozen'] / step_peak['DDP, float32']:.3f}")
    print(f"RESULT fsdp_over_ddp={step_peak['FSDP2, float32'] / step_peak['DDP, float32']:.3f}")


if __name__ == "__main__":
    main()
