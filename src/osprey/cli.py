"""The ``osprey`` command line. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"


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


def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="describe regions of an image (masks as PNG / COCO RLE JSON / boxes)",
                       description="Describe every given region of IMAGE. Without arguments it runs on the "
                       "bundled example image and its masks.")
    p.add_argument("image", nargs="?", type=Path, default=None, help="image file (default: bundled example)")
    p.add_argument("--mask", type=Path, action="append", default=[], help="binary mask PNG (repeatable)")
    p.add_argument("--rle", type=Path, default=None, help="JSON with COCO RLE/polygon 'segmentation' entries")
    p.add_argument("--box", action="append", default=[], help="x0,y0,x1,y1 box region (repeatable)")
    p.add_argument("--detailed", action="store_true", help="detailed instead of short descriptions")
    p.add_argument("--model", default="tiny", help="checkpoint folder or preset name (default: tiny, random init)")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--out", type=Path, default=Path("outputs/describe"), help="folder for overlay.png and answers.json")
    p.set_defaults(func=_run_describe)


def _load_regions(args: argparse.Namespace, height: int, width: int):
    import numpy as np

    from osprey.data.masks import decode_segmentation, load_png_mask

    masks = [load_png_mask(path, height=height, width=width) for path in args.mask]
    if args.rle is not None:
        payload = json.loads(args.rle.read_text())
        entries = payload.get("regions", payload) if isinstance(payload, dict) else payload
        masks += [decode_segmentation(e["segmentation"], height, width) for e in entries]
    for box in args.box:
        try:
            x0, y0, x1, y1 = (float(v) for v in box.split(","))
        except ValueError:
            raise SystemExit(f"--box {box!r}: expected four numbers x0,y0,x1,y1") from None
        mask = np.zeros((height, width), dtype=bool)
        mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
        masks.append(mask)
    return masks


def _run_describe(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from osprey.image import load_image
    from osprey.inference.loading import load_model
    from osprey.inference.predictor import RegionPredictor
    from osprey.inference.render import save_overlay
    from osprey.model.generation import DecodingOptions

    start = time.perf_counter()
    if args.image is None:
        args.image = EXAMPLES / "coins.png"
        if not (args.mask or args.rle or args.box):
            args.rle = EXAMPLES / "coins.json"
    image = load_image(args.image)
    masks = _load_regions(args, image.height, image.width)
    if not masks:
        raise SystemExit("no regions given: use --mask, --rle or --box")
    model, tokenizer, random_init = load_model(args.model)
    if random_init:
        print(f"NOTE: model {args.model!r} is a preset with RANDOM weights: the answers are noise. "
              "Pass --model PATH for trained weights.", file=sys.stderr)
    predictor = RegionPredictor(model, tokenizer)
    encoded = predictor.encode(image)
    answers = predictor.describe(encoded, np.stack(masks), "detailed" if args.detailed else "short",
                                 DecodingOptions(max_new_tokens=args.max_new_tokens))
    args.out.mkdir(parents=True, exist_ok=True)
    save_overlay(image, masks, args.out / "overlay.png")
    record = {"image": str(args.image), "model": str(args.model), "random_init": random_init,
              "regions": [{"region": i + 1, "answer": a} for i, a in enumerate(answers)]}
    (args.out / "answers.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    for i, answer in enumerate(answers, 1):
        print(f"region {i}: {answer}")
    print(f"wrote {args.out / 'overlay.png'} and {args.out / 'answers.json'} ({time.perf_counter() - start:.1f} s)")
    return 0


# Sub-command groups that live beside the code they drive: each module has ``register(subparsers)``.
_COMMAND_MODULES = (
    "osprey.data.cli",
    "osprey.train.cli",
    "osprey.eval.cli",
    "osprey.serve.cli",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib
    import importlib.util

    parser = argparse.ArgumentParser(prog="osprey", description="Osprey: region-level understanding with a multimodal LLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_describe(sub)
    _add_parity(sub)
    _add_convert(sub)
    for name in _COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import osprey  # noqa: F401  (torchvision shim before anything imports transformers)

    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
