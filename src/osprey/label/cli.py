"""``osprey label`` (bulk region labelling, one shard per process) and ``osprey label-merge``.

Registration is argparse only; the model, the provider and torch load when the command runs.
Under ``torchrun`` / ``accelerate launch`` each process reads its rank from the environment and
labels its share of the images (see :mod:`osprey.label.sources`); no process group is needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from osprey.flags import add_model_flags


def register(sub: argparse._SubParsersAction) -> None:
    from osprey.inference.cli import add_provider_flags

    p = sub.add_parser(
        "label", help="label every region of a dataset (short + detailed description per region) into JSONL",
        description="INPUT is a folder of images (regions from segment-everything: SAM / SAM 2 / MobileSAM with "
        "--sam, GrabCut otherwise), a COCO instances file or an Osprey-format annotation file (their masks). "
        "Writes OUT/labels-rank{R}.jsonl, one line per region; resumable (a rerun skips what is written); run "
        "under `accelerate launch -m osprey label ...` or torchrun for one shard per process, then "
        "`osprey label-merge OUT`.")
    p.add_argument("input", type=Path, help="folder of images, COCO instances JSON, or Osprey-format JSON")
    p.add_argument("--images", type=Path, default=None,
                   help="image folder of an annotation file (default: images/ beside the file's folder, "
                   "as `osprey data synth` lays it out)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; resumed if it has labels)")
    add_model_flags(p)
    add_provider_flags(p)
    p.add_argument("--batch-regions", type=int, default=8, help="regions per batched generation (default 8)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="cap of each short answer (default 64)")
    p.add_argument("--detailed-max-new-tokens", type=int, default=256,
                   help="cap of each detailed answer (default 256; the official scripts allow 1024)")
    p.add_argument("--limit", type=int, default=None, help="label only the first N images (in path order)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_label)

    m = sub.add_parser("label-merge", help="merge the per-rank files of `osprey label` into one sorted JSONL",
                       description="Writes OUT/labels.jsonl (or --output): every region once, sorted by "
                       "(image, index): the file one process would have written.")
    m.add_argument("out", type=Path, help="the --out folder of `osprey label`")
    m.add_argument("--output", type=Path, default=None, help="merged file (default OUT/labels.jsonl)")
    m.set_defaults(func=_run_merge)


def _device(spec: str):
    """``--device`` for this process: under a launcher, ``auto``/``cuda`` pick GPU ``LOCAL_RANK``."""
    import torch

    from osprey.model.loading import resolve_device

    device = resolve_device(spec)
    local = os.environ.get("LOCAL_RANK")
    if device.type == "cuda" and device.index is None and local is not None:
        device = torch.device("cuda", int(local) % max(1, torch.cuda.device_count()))
    return device


def _run_label(args: argparse.Namespace) -> int:
    from osprey.inference.predictor import RANDOM_WEIGHTS_NOTE, RegionPredictor
    from osprey.inference.providers import ProviderError, build_provider
    from osprey.label.runner import label
    from osprey.label.sources import LabelError, rank_and_world, read_source
    from osprey.model.generation import DecodingOptions
    from osprey.model.loading import default_model_spec, load_model

    try:
        rank, world = rank_and_world()
        source = read_source(args.input, args.images)
        short = DecodingOptions(max_new_tokens=args.max_new_tokens)
        detailed = DecodingOptions(max_new_tokens=args.detailed_max_new_tokens)
    except (LabelError, ValueError) as err:
        raise SystemExit(f"label: {err}") from None
    spec = args.model or default_model_spec()
    try:
        device = _device(args.device)
        model, tokenizer, random_init = load_model(spec, device=device, dtype=args.dtype, quantize=args.quantize)
        provider = build_provider(args.sam, args.sam_type, device=str(device))  # no --sam: GrabCut
    except ProviderError as err:
        raise SystemExit(f"mask provider: {err}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if random_init and rank == 0:
        print(f"NOTE: {RANDOM_WEIGHTS_NOTE.format(spec=str(spec))}", file=sys.stderr)
    predictor = RegionPredictor(model, tokenizer, max_regions=max(args.batch_regions, 1))
    try:
        stats = label(source, args.out, predictor=predictor, provider=provider, model_name=str(spec),
                      quantize=getattr(model, "quantization", None) or "none", short=short, detailed=detailed, batch_regions=args.batch_regions, limit=args.limit,
                      rank=rank, world=world, progress=not args.no_progress)
    except (LabelError, ProviderError) as err:
        raise SystemExit(f"label: {err}") from None
    note = f", cut a torn last line ({stats.dropped_bytes} bytes)" if stats.dropped_bytes else ""
    empty = f", {len(stats.empty)} empty mask(s) written without answers" if stats.empty else ""
    print(f"rank {rank}/{world}: {stats.images} image(s), {stats.regions} region(s): {stats.answered} answered, "
          f"{stats.skipped} already written{note}{empty}; {stats.seconds:.1f} s, "
          f"{stats.regions_per_second:.2f} regions/s -> {stats.path}", file=sys.stderr)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    from osprey.label.output import merge
    from osprey.label.sources import LabelError

    try:
        path, lines, duplicates = merge(args.out, args.output)
    except LabelError as err:
        raise SystemExit(f"label-merge: {err}") from None
    print(f"wrote {path}: {lines} region(s)" + (f", {duplicates} duplicate line(s) dropped" if duplicates else ""))
    return 0
