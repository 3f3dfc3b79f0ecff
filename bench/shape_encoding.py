"""Region-shape encoding ablation on the small preset: the official full-frame <pos> vs box-normalised.

    .venv/bin/python bench/shape_encoding.py --data runs/osprey-small/data [--steps 100] [--images 20]

For each encoding, the same stage-2 run from the same seed (category naming of every object,
COCO-instances layout, tower trained jointly: the small preset has no pretrained CLIP weights),
then the held-out synthetic benchmark (test seeds). The two runs differ only in
``mask_extractor.shape_encoding``. The feasibility study
(shared/reference/small-model-feasibility.md) found the full-frame encoding stuck near chance on
category with a from-scratch tower; this measures it in our pipeline at a budget that fits CI-less
CPU time. Prints a Markdown table and ``RESULT box_category=… official_category=… …``.

Read the loss columns first: a stage-2-only model was never trained on the benchmark's question
prompts and tends to answer them with an immediate end-of-sequence, so its benchmark accuracies can
be 0 for both encodings (measured: 80 steps, loss 0.32 box vs 1.59 official; docs/osprey-small.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    import osprey  # noqa: F401
    from osprey.train.config import load_config
    from osprey.train.loop import Trainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a synthetic training split (osprey data synth)")
    parser.add_argument("--out", type=Path, default=Path("runs/shape_encoding"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--images", type=int, default=20, help="held-out scenes for the benchmark")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    results = {}
    for encoding in ("box", "official"):
        run = args.out / encoding
        cfg = load_config(None, base={
            "stage": 2, "model": "small", "model_overrides": {"mask_extractor.shape_encoding": encoding},
            "data": [{"parser": "coco_instances", "annotations": "annotations/instances.json", "images": "images"}],
            "data_root": str(args.data), "output_dir": str(run), "train_vision": True,
            "max_steps": args.steps, "batch_size": args.batch, "lr": 1e-3, "warmup_ratio": 0.05, "min_lr_ratio": 0.1,
            "bf16": True, "frozen_dtype": "bfloat16", "save_every": args.steps, "progress": False, "seed": 0,
        })
        summary = Trainer(cfg, log=lambda *_: None).run()
        eval_dir = run / "eval"
        command = [sys.executable, "-m", "osprey.cli", "eval", "synthetic", "--model", str(run / "final"),
                   "--images", str(args.images), "--seed", "0", "--out", str(eval_dir), "--no-progress",
                   "--batch-size", "32", "--max-new-tokens", "8"]  # one-word answers: 8 tokens is plenty
        env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        metrics = json.loads((eval_dir / "metrics.json").read_text())["metrics"]
        results[encoding] = {"loss": summary.final_loss, "minutes": summary.seconds / 60,
                             "naming": metrics["by_type"].get("category_naming", float("nan")),
                             "category": metrics["category"], "colour": metrics["colour"]}

    print(f"stage 2 only (category naming), {args.steps} steps x batch {args.batch}, small preset, "
          f"held-out benchmark on {args.images} scenes\n")
    print("| shape encoding | final loss | category naming (stage-2 prompt) | category (all prompts) | colour | train min |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['loss']:.3f} | {r['naming'] * 100:.1f} % | {r['category'] * 100:.1f} % | "
              f"{r['colour'] * 100:.1f} % | {r['minutes']:.1f} |")
    print("\nRESULT " + " ".join(f"{name}_{k}={r[k]:.4f}" for name, r in results.items()
                                 for k in ("naming", "category", "loss")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
