"""``osprey describe`` and ``osprey chat``: questions about regions of one image, on this machine.

Built on the library directly: :func:`osprey.model.loading.load_model`, :class:`RegionPredictor`
and :func:`osprey.inference.providers.build_provider`. Registration is cheap (argparse only); the
model loads when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from osprey.flags import add_decoding_flags, add_model_flags
from osprey.inference.demo import DEMO_STYLES, OURS, DemoStyle, demo_style

if TYPE_CHECKING:  # (imported when a command runs: registering the commands loads no torch)
    import numpy as np
    from PIL import Image

    from osprey.inference.predictor import RegionPredictor
    from osprey.inference.providers import MaskProvider

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    _add_describe(sub)
    _add_chat(sub)


# ------------------------------------------------------------------------------------ shared flags


def add_provider_flags(p: argparse.ArgumentParser) -> None:
    """``--sam`` and ``--sam-type``: the mask provider for clicks, boxes and "everything"."""
    p.add_argument("--sam", type=Path, default=None, metavar="CKPT",
                   help="local SAM / MobileSAM / SAM 2 checkpoint for --point/--box/--everything "
                   "(default: the weight-free GrabCut provider); nothing is downloaded")
    p.add_argument("--sam-type", default="vit_b",
                   help="vit_b | vit_l | vit_h (segment-anything), vit_t (MobileSAM), sam2.1_hiera_t ... (SAM 2)")


def _add_region_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", type=Path, default=None, help="image file (default: bundled example)")
    p.add_argument("--mask", type=Path, action="append", default=[], help="binary mask PNG (repeatable)")
    p.add_argument("--rle", type=Path, default=None,
                   help="JSON: a list of COCO RLE/polygon 'segmentation' entries, or {'regions': [...]}")
    p.add_argument("--box", action="append", default=[], metavar="x0,y0,x1,y1",
                   help="box region (repeatable); the filled box, or segmented with --sam / --segment-boxes")
    p.add_argument("--segment-boxes", action="store_true",
                   help="segment the object inside each --box with the mask provider (automatic with --sam)")
    p.add_argument("--point", action="append", default=[], metavar="x,y",
                   help="click: the mask provider segments the object under it (repeatable, one region each)")
    p.add_argument("--everything", action="store_true",
                   help="segment everything and use every segment as a region (largest first)")
    p.add_argument("--max-regions", type=int, default=32)
    p.add_argument("--demo-style", choices=DEMO_STYLES, default="auto",
                   help="official: the official demo's prompt (<image>\\n\\n...), answer post-processing, "
                   "images taller than 512 px downscaled with their masks, one SAM mask per click; ours: the "
                   "trained prompt, answers as decoded, full resolution, SAM's best of 3; auto (default): "
                   "official for an official checkpoint folder, else ours (the API's demo_style, the web "
                   "demo's selector)")


def _numbers(text: str, count: int, flag: str, shape: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise SystemExit(f"{flag} {text!r}: expected {count} numbers {shape}")
    return values


def _region_specs(args: argparse.Namespace, rle: Path | None) -> list:
    """Region specs for :func:`osprey.inference.regions.to_masks`, in flag order."""
    specs: list = [str(path) for path in args.mask]
    if rle is not None:
        try:
            payload = json.loads(rle.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--rle {str(rle)!r}: cannot read it as JSON ({err})") from None
        entries = payload.get("regions", payload) if isinstance(payload, dict) else payload
        if not isinstance(entries, list):
            raise SystemExit(f"--rle {str(rle)!r}: expected a list of regions or {{'regions': [...]}}")
        specs += [e["segmentation"] if isinstance(e, dict) and "segmentation" in e else e for e in entries]
    segment = bool(args.segment_boxes or args.sam)
    specs += [{"box": _numbers(b, 4, "--box", "x0,y0,x1,y1"), "segment": segment} for b in args.box]
    specs += [{"point": _numbers(p, 2, "--point", "x,y")} for p in args.point]
    return specs


@dataclass(frozen=True)
class Loaded:
    """What describe and chat work on: the image, its region masks, the model and the provider."""

    image_path: Path
    image: Image.Image  # as given (the overlay and answers.json are in its pixels)
    masks: np.ndarray  # (R, H, W) bool, at the image's size
    predictor: RegionPredictor
    provider: MaskProvider
    random_init: bool
    style: DemoStyle = OURS  # inference.demo: the official demo's behaviour, or ours

    @property
    def dtype(self) -> str:
        return str(self.predictor.dtype).removeprefix("torch.")

    def inputs(self) -> tuple[Image.Image, np.ndarray]:
        """The image and masks as the model gets them (the style may downscale both)."""
        return self.style.inputs(self.image, self.masks)


def _load(args: argparse.Namespace) -> Loaded:
    """The image and masks the flags name (default: the bundled example and its masks), the model
    and the mask provider; every failure is a one-line exit naming what is wrong."""
    import numpy as np

    from osprey.image import load_image
    from osprey.inference.predictor import RANDOM_WEIGHTS_NOTE, RegionPredictor
    from osprey.inference.providers import ProviderError, build_provider
    from osprey.inference.regions import RegionError, to_masks
    from osprey.model.loading import BUNDLED_NOTE, default_model_spec, is_bundled, load_model, resolve_device

    path, rle = args.image, args.rle
    if path is None:
        path = EXAMPLES / "scene.png"
        if not (args.mask or args.rle or args.box or args.point or args.everything):
            rle = EXAMPLES / "scene.json"
    try:
        image = load_image(path)
    except (OSError, ValueError) as err:
        raise SystemExit(f"image {str(path)!r}: {err}") from None
    specs = _region_specs(args, rle)
    if not specs and not args.everything:
        raise SystemExit("no regions given: use --mask, --rle, --box, --point or --everything")
    spec = args.model or default_model_spec()
    try:
        device = resolve_device(args.device)
        model, tokenizer, random_init = load_model(spec, device=device, dtype=args.dtype, quantize=args.quantize)
        provider = build_provider(args.sam, args.sam_type, device=str(device))  # no --sam: GrabCut
        style = demo_style(model, args.demo_style)
        if hasattr(provider, "multimask_click"):  # the style's one-click rule, for this whole command
            provider.multimask_click = style.multimask_click
    except ProviderError as err:
        raise SystemExit(f"mask provider: {err}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if random_init:
        print(f"NOTE: {RANDOM_WEIGHTS_NOTE.format(spec=str(spec))}", file=sys.stderr)
    elif is_bundled(spec):
        print(f"NOTE: {BUNDLED_NOTE}", file=sys.stderr)
    predictor = RegionPredictor(model, tokenizer, max_regions=max(args.max_regions, 1))
    try:
        masks = to_masks(specs, image.height, image.width, provider=provider, image=image,
                         max_regions=args.max_regions)
        if args.everything:
            found = [m for m in provider.everything(image) if m.any()]
            masks = np.concatenate([masks, np.stack(found)[: max(0, args.max_regions - len(masks))]]) if found else masks
    except (RegionError, ProviderError, ValueError) as err:
        raise SystemExit(f"regions: {err}") from None
    if len(masks) == 0:
        raise SystemExit("no regions: --everything found no segment")
    return Loaded(path, image, masks, predictor, provider, random_init, style)


def _checked(text: str, regions: int) -> str:
    from osprey.inference.predictor import check_question

    try:
        return check_question(text, regions)
    except ValueError as err:
        raise SystemExit(str(err)) from None


# --------------------------------------------------------------------------------------- describe


def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="describe regions of an image (masks, RLE, boxes, clicks, everything)",
                       description="Describe every given region of IMAGE; writes overlay.png and answers.json. "
                       "Without arguments it runs on the bundled example image and its masks.")
    _add_region_flags(p)
    p.add_argument("--detailed", action="store_true", help="detailed instead of short descriptions")
    p.add_argument("--category", action="store_true", help="ask for the category (one word or phrase)")
    p.add_argument("--question", default=None, help="custom question naming the region <region1>")
    add_model_flags(p)
    add_provider_flags(p)
    add_decoding_flags(p)
    p.add_argument("--out", type=Path, default=Path("outputs/describe"), help="folder for overlay.png and answers.json")
    p.set_defaults(func=_run_describe)


def _run_describe(args: argparse.Namespace) -> int:
    from osprey.masks import mask_record
    from osprey.model.generation import options_from_flags
    from osprey.model.loading import default_model_spec, generation_defaults, model_label
    from osprey.overlay import save_overlay

    start = time.perf_counter()
    question = args.question or ("detailed" if args.detailed else "category" if args.category else "short")
    if args.question:
        _checked(args.question, 1)
    run = _load(args)
    options = options_from_flags(args, generation_defaults(run.predictor.model))
    image, masks = run.inputs()
    try:
        answers = [run.style.answer(a) for a in
                   run.predictor.describe(image, masks, question, options, prefix=run.style.prefix)]
    except ValueError as err:
        raise SystemExit(f"describe: {err}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    save_overlay(run.image, list(run.masks), args.out / "overlay.png")
    regions = [{**mask_record(i, m), "answer": a} for i, (m, a) in enumerate(zip(run.masks, answers, strict=True))]
    record = {"image": str(run.image_path), "model": model_label(args.model or default_model_spec()),
              "random_init": run.random_init,
              "question": question, "provider": run.provider.name, "device": str(run.predictor.device),
              "dtype": run.dtype, "decoding": options.describe(), "demo_style": run.style.name, "regions": regions}
    (args.out / "answers.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    for i, answer in enumerate(answers, 1):
        print(f"region {i}: {answer}")
    print(f"wrote {args.out / 'overlay.png'} and {args.out / 'answers.json'} ({time.perf_counter() - start:.1f} s)")
    return 0


# ------------------------------------------------------------------------------------------- chat


def _add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="interactive chat about regions of an image (<region1>, <region2>, ...)",
                       description="Type questions that name regions as <region1>, <region2>, ... in the order the "
                       "regions were given. The image is encoded once. Commands: /regions, /reset, /quit.")
    _add_region_flags(p)
    add_model_flags(p)
    add_provider_flags(p)
    add_decoding_flags(p)
    p.set_defaults(func=_run_chat)


def _run_chat(args: argparse.Namespace) -> int:
    from osprey.inference.batch import Query
    from osprey.inference.predictor import check_question
    from osprey.model.generation import options_from_flags
    from osprey.model.loading import generation_defaults
    from osprey.text.conversation import Turn

    run = _load(args)
    options = options_from_flags(args, generation_defaults(run.predictor.model))
    image, masks = run.inputs()
    encoded, history = run.predictor.encode(image), []
    count = len(run.masks)
    # post-processing needs the whole answer: the official style prints it at the end, ours streams
    stream = None if run.style.postprocess else (lambda _index, piece: print(piece, end="", flush=True))
    interactive = sys.stdin.isatty()
    print(f"{count} region(s): <region1>..<region{count}>. /regions lists them, /reset forgets the chat, "
          "/quit leaves.")
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history.clear()
            print("(history cleared)")
            continue
        if text == "/regions":
            for k, mask in enumerate(run.masks, 1):
                ys, xs = mask.nonzero()
                print(f"<region{k}>: {int(mask.sum())} px, box x {xs.min()}..{xs.max()} y {ys.min()}..{ys.max()}")
            continue
        try:
            check_question(text, count)
            query = Query(text, tuple(range(count)), tuple(history), prefix=run.style.prefix)
            answer = run.style.answer(run.predictor.ask(encoded, masks, [query], options, on_token=stream)[0])
        except ValueError as err:
            print(f"error: {err}")
            continue
        print(answer if stream is None else "")
        history += [Turn("user", text), Turn("assistant", answer or " ")]  # (an empty turn would read as open)
    return 0
