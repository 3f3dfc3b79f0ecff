"""Peak memory per process of a training step of the 7B-shaped model: DDP vs FSDP2 on CPU processes.

    python bench/train_memory.py [--preset osprey_7b_1layer] [--steps 2] [--groups full check lora]
                                 [--ddp-world 1|2] [--full-finetune (= --groups full)]

The headline is Osprey's official stage 3, the **full fine-tune** (group ``full``: the whole LLM, the
mask extractor and the projector trained, the vision tower frozen), where FSDP2 shards parameters,
gradients and AdamW state. Group ``lora`` is stage 3 with LoRA r=16 on the LLM instead (almost nothing
trained, so only the weights shard). Batch 1 per process, synthetic images at the preset's 512 px.

World sizes: FSDP2 runs with 2 processes. A DDP process holds the full replica, its gradients, DDP's
gradient buckets and the full AdamW state whatever the world size, so the full fine-tune's DDP rows
run at world size 1 (two ~10.5 GiB replicas do not fit this shared machine; ``--ddp-world 2`` where
they do) *through DDP itself*: a
gloo group of size 1, the same :meth:`Trainer.train_step`, the model wrapped in
``DistributedDataParallel`` with accelerate's arguments (``find_unused_parameters=True``, 25 MiB
buckets), so the buckets are allocated and the all-reduce runs. Group ``check`` verifies that claim
on the ``small`` preset (SmolLM2-135M, full fine-tune): DDP at world 1 vs world 2, per process.
The LoRA DDP rows run at world size 2. The table names each row's world size.

Each run is its own ``torch.distributed.run`` job (gloo) of the real training loop
(:class:`osprey.train.loop.Trainer`). After set-up (model built, sharded, optimizer made) each process
resets its peak resident set (``/proc/self/clear_refs`` = 5, which resets ``VmHWM``), runs the
optimizer steps and reads ``VmHWM``: the peak RSS of the step itself, all of it (Python, torch,
weights, gradients, optimizer state, activations, gloo buffers). The table shows the larger rank.
``MALLOC_MMAP_THRESHOLD_`` is fixed at 128 KiB so glibc returns freed tensors to the system at once
(its default raises the threshold after the first large free and keeps freed memory in the heap,
which would show memory no tensor holds). Each phase of each step (forward, backward with gradient
clipping, optimizer step, the rest) gets its own peak: ``VmHWM`` is read and reset at the
boundaries (a forward hook on the model, step pre/post hooks on the optimizer). Also printed: the
set-up peak (``ru_maxrss`` before the first reset), which for FSDP includes building the full model
on every rank before sharding (meta-device initialisation is not done).

Before each run the bench waits (up to 20 min, rechecking each minute) until ``MemAvailable`` covers
that run's estimated need, so a shared machine is not driven out of memory.

The last line is ``RESULT fsdp_over_ddp=<FSDP2 step peak / DDP step peak>`` of the full fine-tune,
float32 weights both (``lora_fsdp_over_ddp`` is the LoRA ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3


@dataclass(frozen=True)
class Run:
    group: str  # full | lora | check
    name: str
    sharding: str  # none (DDP) | fsdp
    frozen_dtype: str
    world: int
    need_gib: float  # MemAvailable to wait for before starting (all its processes together)
    preset: str | None = None  # None: --preset
    why: str = ""


DDP_W1 = "world 1 through DDP: a DDP process's memory does not depend on the world size, two replicas do not fit"
RUNS = [
    Run("full", "DDP, float32", "none", "float32", 1, 14, why=DDP_W1),
    Run("full", "FSDP2, float32", "fsdp", "float32", 2, 14),
    Run("full", "DDP, bf16 frozen", "none", "bfloat16", 1, 14, why=DDP_W1),
    Run("full", "FSDP2, bf16 frozen", "fsdp", "bfloat16", 2, 14),
    Run("check", "DDP, float32", "none", "float32", 1, 8, preset="small"),
    Run("check", "DDP, float32", "none", "float32", 2, 10, preset="small"),
    Run("lora", "DDP, float32", "none", "float32", 2, 11),
    Run("lora", "FSDP2, float32", "fsdp", "float32", 2, 10),
    Run("lora", "DDP, bf16 frozen", "none", "bfloat16", 2, 8),
    Run("lora", "FSDP2, bf16 frozen", "fsdp", "bfloat16", 2, 8),
]
GROUP_TITLES = {
    "full": "full fine-tune (the whole LLM trained: Osprey's stage 3)",
    "check": "world-size check: DDP full fine-tune, world 1 vs world 2",
    "lora": "LoRA r=16 on the LLM",
}


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise KeyError("MemAvailable")


class PhaseMeter:
    """Per phase of a step: the RSS at its end and the peak RSS during it (``VmHWM``, reset at each mark)."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int, int]] = []  # (phase, RSS at its end, peak during it)

    def reset(self) -> None:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def mark(self, phase: str) -> None:
        self.phases.append((phase, _vm("VmRSS"), _vm("VmHWM")))
        self.reset()


def wrap_ddp_world1(trainer) -> None:
    """World size 1: the loop runs the bare model (accelerate starts no group for one process);
    wrap it in DDP exactly as ``accelerator.prepare`` does for several (same kwargs), over a gloo
    group of size 1, so the replica, DDP's buckets and the all-reduce are all there."""
    from torch.nn.parallel import DistributedDataParallel

    from osprey.train.distributed import ensure_process_group

    ensure_process_group(trainer.accelerator.device)
    handler = trainer.accelerator.ddp_handler
    trainer.ddp_model = DistributedDataParallel(trainer.model, **(handler.to_kwargs() if handler else {}))


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
    if args.sharding == "none" and trainer.world == 1:
        wrap_ddp_world1(trainer)
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
    trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    result = {"rank": trainer.rank, "world": trainer.world, "wrapper": type(trainer.ddp_model).__name__,
              "step_peak": step_hwm, "setup_rss": setup_rss, "setup_peak": setup_peak, "losses": losses,
              "phases": meter.phases, "trained": trained}
    Path(args.out, f"memory-rank{trainer.rank}.json").write_text(json.dumps(result))


def wait_for_memory(run: Run, wait_s: int) -> None:
    """Sleep (60 s at a time, at most ``wait_s``) until ``MemAvailable`` covers ``run.need_gib``."""
    waited = 0
    while mem_available() < run.need_gib * GIB:
        if waited >= wait_s:
            raise RuntimeError(f"{run.group} {run.name}: MemAvailable {mem_available() / GIB:.1f} GiB after "
                               f"{waited} s; expected at least {run.need_gib} GiB free")
        print(f"{run.group} {run.name}: {mem_available() / GIB:.1f} GiB available, waiting for {run.need_gib}",
              file=sys.stderr, flush=True)
        time.sleep(60)
        waited += 60


def run_job(run: Run, args: argparse.Namespace, world: Path, root: Path, port: int) -> list[dict]:
    wait_for_memory(run, args.wait_s)
    out = root / f"{run.group}-{run.name.replace(' ', '_').replace(',', '')}-w{run.world}"
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "131072",
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(run.world), "--master_port",
           str(port), __file__, "--worker", "--preset", run.preset or args.preset, "--steps", str(args.steps),
           "--world", str(world), "--out", str(out), "--sharding", run.sharding, "--frozen-dtype", run.frozen_dtype,
           *(["--full-finetune"] if run.group != "lora" else [])]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{run.group} {run.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"{run.group} {run.name} world {run.world}: done in {time.perf_counter() - started:.0f} s",
          file=sys.stderr, flush=True)
    return [json.loads((out / f"memory-rank{r}.json").read_text()) for r in range(run.world)]


def peak(ranks: list[dict], key: str = "step_peak") -> int:
    return max(r[key] for r in ranks)


def print_group(group: str, results: list[tuple[Run, list[dict]]], args: argparse.Namespace) -> None:
    preset = results[0][0].preset or args.preset
    trained = results[0][1][0]["trained"]
    print(f"\n### {preset}, {GROUP_TITLES[group]}: {trained / 1e6:.1f} M trained parameters, "
          f"batch 1 per process, {args.steps} optimizer steps\n")
    print("| configuration | processes (wrapper) | step peak RSS / process (GiB) | per rank | RSS after set-up | "
          "set-up peak | losses (rank 0) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for run, ranks in results:
        per_rank = " / ".join(f"{r['step_peak'] / GIB:.2f}" for r in ranks)
        print(f"| {run.name} | {run.world} ({ranks[0]['wrapper']}) | {peak(ranks) / GIB:.2f} | "
              f"{per_rank} | {peak(ranks, 'setup_rss') / GIB:.2f} | "
              f"{peak(ranks, 'setup_peak') / GIB:.2f} | {', '.join(f'{x:.4f}' for x in ranks[0]['losses'])} |")
    whys = {run.why for run, _ in results if run.why}
    for why in whys:
        print(f"\nDDP rows at 1 process: {why} (group `check`).")
    if group == "check":
        return
    print("\nPer phase (the larger rank; GiB): peak during the phase / RSS at its end\n")
    print("| step | phase | " + " | ".join(f"{run.name} (w{run.world})" for run, _ in results) + " |")
    print("|---:|---|" + "---:|" * len(results))
    phases = results[0][1][0]["phases"]
    per_step = len(phases) // args.steps
    for i, (phase, _, _) in enumerate(phases):
        cells = [f"{max(r['phases'][i][2] for r in ranks) / GIB:.2f} / {max(r['phases'][i][1] for r in ranks) / GIB:.2f}"
                 for _, ranks in results]
        print(f"| {i // per_step + 1} | {phase} | " + " | ".join(cells) + " |")


def ratio(results: list[tuple[Run, list[dict]]], group: str, top: str, bottom: str) -> float | None:
    peaks = {run.name: peak(ranks) for run, ranks in results if run.group == group}
    return peaks[top] / peaks[bottom] if top in peaks and bottom in peaks else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="osprey_7b_1layer", help="the model of groups full and lora")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--groups", nargs="*", choices=list(GROUP_TITLES), default=list(GROUP_TITLES))
    parser.add_argument("--ddp-world", type=int, default=1, choices=(1, 2),
                        help="processes of the full fine-tune's DDP rows (2 needs ~2 x 10.5 GiB free)")
    parser.add_argument("--wait-s", type=int, default=1200, help="how long to wait for free memory per run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--full-finetune", action="store_true", help="only the group full (`--groups full`)")
    parser.add_argument("--world", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--sharding", help=argparse.SUPPRESS)
    parser.add_argument("--frozen-dtype", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.full_finetune:
        args.groups = ["full"]
    from osprey.synthetic import WorldConfig
    from osprey.synthetic.writer import train_seeds, write_split

    results: list[tuple[Run, list[dict]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        write_split(world, train_seeds(4), WorldConfig(image_size=128, min_objects=2, max_objects=3))
        for i, run in enumerate(r for r in RUNS if r.group in args.groups):
            if run.group == "full" and run.sharding == "none" and args.ddp_world == 2:
                run = replace(run, world=2, need_gib=2 * run.need_gib, why="")
            results.append((run, run_job(run, args, world, Path(tmp), 29650 + i)))
    print("Training step (stage 3, the vision tower frozen), CPU processes (gloo), peak RSS per process")
    for group in args.groups:
        print_group(group, [(run, ranks) for run, ranks in results if run.group == group], args)
    check = [peak(ranks) for run, ranks in results if run.group == "check"]
    if len(check) == 2:
        print(f"\nDDP per-process step peak, world 2 over world 1 (small): {check[1] / check[0]:.3f}")
    full = ratio(results, "full", "FSDP2, float32", "DDP, float32")
    lora = ratio(results, "lora", "FSDP2, float32", "DDP, float32")
    bf16 = ratio(results, "full", "FSDP2, bf16 frozen", "DDP, float32")
    if bf16 is not None:
        print(f"Full fine-tune, FSDP2 bf16-frozen over DDP float32: {bf16:.3f}")
    fields = [f"fsdp_over_ddp={full:.3f}" if full is not None else "",
              f"lora_fsdp_over_ddp={lora:.3f}" if lora is not None else "",
              f"ddp_world2_over_world1={check[1] / check[0]:.3f}" if len(check) == 2 else ""]
    if any(fields):
        print("RESULT " + " ".join(f for f in fields if f))


if __name__ == "__main__":
    main()
