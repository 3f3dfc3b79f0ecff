"""Command line: ``osprey data synth OUT_DIR --images N --seed S [--split train|test] [--size 256]``.

Also runnable alone as ``python -m osprey.synthetic.cli OUT_DIR ...``. ``--seed S`` starts the run of
seeds inside the chosen split's range (train: S, S+1, ...; test: 10**9 + S, ...), so a training and a
test split can never share a scene whatever seeds are passed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from osprey.synthetic.questions import ALL_SUBSETS
from osprey.synthetic.seeds import test_seeds, train_seeds
from osprey.synthetic.world import WorldConfig
from osprey.synthetic.writer import write_split

__all__ = ["add_synthetic_subcommand", "main", "run_synth"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "out_dir", metavar="OUT_DIR", help="folder to write images/, annotations/ and the benchmark"
    )
    parser.add_argument("--images", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="first user seed of the run (default 0)")
    parser.add_argument("--split", choices=("train", "test"), default="train", help="seed range to draw from")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--min-objects", type=int, default=WorldConfig.min_objects)
    parser.add_argument("--max-objects", type=int, default=WorldConfig.max_objects)
    parser.add_argument(
        "--subsets",
        nargs="+",
        choices=ALL_SUBSETS,
        default=list(ALL_SUBSETS),
        help="subsets to write (default: all)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_synth(args: argparse.Namespace) -> int:
    seeds = (train_seeds if args.split == "train" else test_seeds)(args.images, args.seed)
    config = WorldConfig(image_size=args.size, min_objects=args.min_objects, max_objects=args.max_objects)
    manifest = write_split(
        args.out_dir, seeds, config, tuple(args.subsets), split=args.split, progress=not args.no_progress
    )
    summary = {
        "out_dir": manifest.out_dir,
        "split": manifest.split,
        "seeds": manifest.seeds,
        "images": manifest.n_images,
        "annotations": manifest.n_annotations,
        "questions": manifest.questions,
        "seconds": manifest.seconds,
    }
    print(json.dumps(summary, indent=2))
    return 0


def add_synthetic_subcommand(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth`` under a ``data`` command's subparsers; the handler is ``args.func(args)``."""
    parser = subparsers.add_parser(
        "synth",
        help="generate a split of the synthetic world",
        description="Generate images, COCO instances, Osprey-724K-format files and a benchmark from seeds.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_synth)
    return parser


def register(data_commands: argparse._SubParsersAction) -> None:
    """Hook for ``osprey.cli``: ``osprey data synth``."""
    add_synthetic_subcommand(data_commands)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m osprey.synthetic.cli", description="Generate a split of the synthetic world."
    )
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_synth(args)
    except ValueError as err:
        parser.error(str(err))
    return 2


if __name__ == "__main__":
    sys.exit(main())
