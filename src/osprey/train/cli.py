"""``osprey train --config FILE.yaml [key=value ...] [--resume]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one stage (1 image-text, 2 mask-text, 3 end-to-end) from a YAML config",
        description="Train one Osprey stage. The YAML keys are the fields of osprey.train.config.TrainConfig "
        "(stage, model, data, output_dir, lr, batch_size, ...); key=value arguments override them "
        "(nested keys with dots: lora.r=8). Multi-process: `accelerate launch -m osprey.train.cli ...` "
        "(see docs/training.md).",
    )
    p.add_argument("--config", type=Path, default=None, help="training YAML (e.g. configs/finetune_lora.yaml; the small recipe: configs/small/stage1.yaml ...; "
                   "the official 7B recipe: configs/osprey_7b/stage2.yaml, configs/osprey_7b/stage3.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=100 lr=1e-4")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue from the newest complete checkpoint in output_dir (or the one given)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved plan (every training key with its value, the modules that train, "
                   "where each module starts from) and exit without loading any weights or data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from osprey.train.config import load_config

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError, TypeError) as err:
        print(f"osprey train: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        from osprey.train.plan import describe_plan

        print(describe_plan(cfg))
        return 0
    from osprey.train.loop import Trainer

    Trainer(cfg).run(resume=args.resume)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m osprey.train.cli`` (what ``accelerate launch -m`` runs)."""
    import osprey  # noqa: F401  (torchvision shim first)

    parser = argparse.ArgumentParser(prog="osprey-train")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "train":
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
