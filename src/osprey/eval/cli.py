"""``osprey eval TASK --model SPEC --data PATH [--images DIR] [--limit N] [--out DIR]``.

Tasks: lvis, paco (referring classification), refcocog (region captions), cityscapes, ade20k
(open-vocabulary segmentation), pope (any POPE split file), description, ferret_refer_desc,
ferret_refer_reason (judge-scored), synthetic (held-out synthetic split; ``--seed``, ``--images N``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from osprey.flags import add_decoding_flags, add_model_flags

if TYPE_CHECKING:  # the runner pulls in torch; --help must not
    from osprey.eval.runner import Task

# Judge tasks: which rule the judge gets (Osprey's Ferret files label every question "description").
_JUDGE_CATEGORY = {"description": None, "ferret_refer_desc": "refer_desc", "ferret_refer_reason": "refer_reason"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="run a benchmark (LVIS/PACO, RefCOCOg, OV-seg, POPE, judged, synthetic)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=list(TASKS))
    add_model_flags(p)
    p.add_argument("--data", type=Path, help="annotation file (questions file for judge tasks)")
    p.add_argument("--images", default=None,
                   help="image folder; for `synthetic` the number of images to generate (default 20)")
    p.add_argument("--limit", type=int, default=None, help="first N records (images, or questions for POPE/judge)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default outputs/eval/TASK)")
    p.add_argument("--batch-size", type=int, default=8, help="questions per batched generation")
    add_decoding_flags(p, max_new_tokens=None, seed=False)  # default: the official 1024; a task may set its own (synthetic: 96)
    p.add_argument("--seed", type=int, default=0, help="sampling seed; for `synthetic` also the test-split seed")
    p.add_argument("--zero-regions", action="store_true", help="ablation: zero every region's mask/pos features")
    p.add_argument("--sentence-model", default=None, help="sentence-transformers folder (default: all-MiniLM-L6-v2 package)")
    p.add_argument("--panoptic-dir", type=Path, default=None, help="OV-seg PNG folder (default: --data without .json)")
    p.add_argument("--contexts", type=Path, default=None, help="judge tasks: per-image context file")
    p.add_argument("--references", type=Path, default=None, help="judge tasks: reference answers file")
    p.add_argument("--judge-url", default=None, help="OpenAI-compatible base URL (default: OSPREY_LLM_BASE_URL)")
    p.add_argument("--judge-model", default=None, help="judge model name (default: OSPREY_LLM_MODEL)")
    p.add_argument("--judge-cache", type=Path, default=None, help="judge reply cache (default OUT/judge_cache)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise SystemExit(f"osprey eval {args.task}: {', '.join(missing)} required")


# -- one builder per task: (args, out folder) -> Task; a task's module is imported only when chosen
def _data_and_images(args: argparse.Namespace) -> Path:
    _need(args, "data", "images")
    return Path(args.images)


def _synthetic(args: argparse.Namespace, out: Path) -> Task:
    from osprey.eval.tasks.synthetic import SyntheticBenchmark

    return SyntheticBenchmark(out, seed=args.seed, images=int(args.images or 20))


def _referring(args: argparse.Namespace, out: Path) -> Task:
    images = _data_and_images(args)
    from osprey.eval.tasks.referring import ReferringClassification

    return ReferringClassification(args.task, args.data, images, limit=args.limit, sentence_model=args.sentence_model)


def _refcocog(args: argparse.Namespace, out: Path) -> Task:
    images = _data_and_images(args)
    from osprey.eval.tasks.refcocog import RefCOCOgCaptioning

    return RefCOCOgCaptioning(args.data, images, limit=args.limit)


def _openseg(args: argparse.Namespace, out: Path) -> Task:
    images = _data_and_images(args)
    from osprey.eval.tasks.openseg import OpenVocabSegmentation

    return OpenVocabSegmentation(args.task, args.data, images, limit=args.limit, sentence_model=args.sentence_model,
                                 panoptic_dir=args.panoptic_dir)


def _pope(args: argparse.Namespace, out: Path) -> Task:
    images = _data_and_images(args)
    from osprey.eval.tasks.pope import Pope

    return Pope(args.data, images, limit=args.limit, name=f"pope:{args.data.stem}")


def _judged(args: argparse.Namespace, out: Path) -> Task:
    images = _data_and_images(args)
    _need(args, "contexts", "references")
    from osprey.chat_client import ChatClient
    from osprey.eval.tasks.judged import JudgedDescription

    cache = args.judge_cache or out / "judge_cache"
    overrides = {k: v for k, v in (("base_url", args.judge_url), ("model", args.judge_model)) if v}
    judge = ChatClient.from_env(cache_dir=cache, **overrides)
    return JudgedDescription(args.task, args.data, args.contexts, args.references, images, judge, limit=args.limit,
                             category=_JUDGE_CATEGORY[args.task])


# Task name -> builder; the order is the order of the command's choices.
TASKS: dict[str, Callable[[argparse.Namespace, Path], Task]] = {
    "lvis": _referring,
    "paco": _referring,
    "refcocog": _refcocog,
    "cityscapes": _openseg,
    "ade20k": _openseg,
    "pope": _pope,
    "description": _judged,
    "ferret_refer_desc": _judged,
    "ferret_refer_reason": _judged,
    "synthetic": _synthetic,
}


def build_task(args: argparse.Namespace, out: Path) -> Task:
    return TASKS[args.task](args, out)


def run(args: argparse.Namespace) -> int:
    from osprey.eval.runner import run_task
    from osprey.inference.predictor import RegionPredictor
    from osprey.model.generation import options_from_flags
    from osprey.model.loading import generation_defaults, load_model

    out = args.out or Path("outputs/eval") / args.task
    task = build_task(args, out)
    if args.model is None:
        from osprey.model.loading import default_model_spec

        args.model = default_model_spec()
    try:
        model, tokenizer, random_init = load_model(args.model, device=args.device, dtype=args.dtype,
                                                     quantize=args.quantize)
    except ValueError as err:
        raise SystemExit(f"eval: {err}") from None
    if random_init:
        print(f"NOTE: model {args.model!r} is a preset with RANDOM weights: the numbers are meaningless.",
              file=sys.stderr)
    if args.max_new_tokens is None:
        args.max_new_tokens = getattr(task, "default_max_new_tokens", 1024)  # synthetic: 96
    options = options_from_flags(args, generation_defaults(model))
    info = {"model": str(args.model), "random_init": random_init, "decoding": options.describe()["mode"],
            "decoding_options": options.describe(),
            "seed": args.seed, "max_new_tokens": args.max_new_tokens, "zero_regions": args.zero_regions,
            "data": str(args.data) if args.data else None}
    run_task(task, RegionPredictor(model, tokenizer), options, out, batch_size=args.batch_size,
             zero_regions=args.zero_regions, progress=not args.no_progress, run_info=info)
    print(f"wrote {out}/predictions.jsonl, metrics.json, results.md", file=sys.stderr)
    return 0
