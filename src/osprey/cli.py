"""The ``osprey`` command line: every command group is registered here, from the module beside the
code it drives. Those modules import only argparse and light tables at top level; each command
imports what it needs only when it runs, so ``osprey --help`` stays fast."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osprey.curate import cli as curate_cli
from osprey.data import cli as data_cli
from osprey.eval import cli as eval_cli
from osprey.inference import cli as inference_cli
from osprey.label import cli as label_cli
from osprey.serve import cli as serve_cli
from osprey.synthetic import cli as synthetic_cli
from osprey.train import cli as train_cli


def _add_parity(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="recompute golden reference sets and compare with their recorded outputs",
                       description="Recompute every golden set (NAME.json + NAME.safetensors) in DIR with this "
                       "implementation, print the max abs error of each output against its tolerance, exit 1 on any miss.")
    p.add_argument("dir", type=Path, help="folder holding golden sets (e.g. ../shared/golden)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.set_defaults(func=_run_parity)


def _run_parity(args: argparse.Namespace) -> int:
    import torch

    from osprey.parity import run_parity

    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_parity(args.dir, progress=lambda msg: print(f"[parity] {msg}", file=sys.stderr, flush=True))
    print(report.markdown())
    misses = report.misses
    print(f"\n{len(report.checks) - len(misses)} passed, {len(misses)} failed")
    return 0 if not misses else 1


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert an official Osprey checkpoint folder to our safetensors layout")
    p.add_argument("official_dir", type=Path, help="released checkpoint folder (config.json + pytorch_model*.bin or safetensors)")
    p.add_argument("out_dir", type=Path, help="output folder (written atomically)")
    p.add_argument("--clip-weights", type=Path, default=None,
                   help="open_clip_pytorch_model.bin, used when the checkpoint lacks the vision tower")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="bfloat16")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    import torch

    from osprey.model.weights import load_official, save_pretrained

    model = load_official(args.official_dir, dtype=getattr(torch, args.dtype), clip_weights=args.clip_weights)
    save_pretrained(model, args.out_dir)
    tokenizer = args.official_dir / "tokenizer.model"
    if tokenizer.exists():
        import shutil

        shutil.copy(tokenizer, args.out_dir / "tokenizer.model")
    print(f"wrote {args.out_dir} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, {args.dtype})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osprey", description="Osprey: region-level understanding with a multimodal LLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parity(sub)
    _add_convert(sub)
    data_commands = data_cli.register(sub)  # osprey data validate|show ...
    synthetic_cli.register(data_commands)  # ... synth
    curate_cli.register(data_commands)  # ... curate|part-level|pos-neg
    for group in (train_cli, eval_cli, inference_cli, label_cli, serve_cli):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import osprey  # noqa: F401  (torchvision shim before anything imports transformers)

    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
