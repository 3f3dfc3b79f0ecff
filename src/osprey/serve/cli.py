"""``osprey describe``, ``osprey chat`` and ``osprey serve``.

Registration is cheap (argparse only); the model, FastAPI and uvicorn load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from osprey.flags import add_model_flags

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    _add_describe(sub)
    _add_chat(sub)
    _add_serve(sub)


# ------------------------------------------------------------------------------------ shared flags


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    add_model_flags(p)
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


def _numbers(text: str, count: int, flag: str, shape: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise SystemExit(f"{flag} {text!r}: expected {count} numbers {shape}")
    return values


def _region_specs(args: argparse.Namespace) -> list:
    """Region specs for :func:`osprey.inference.regions.to_masks`, in flag order."""
    specs: list = [str(path) for path in args.mask]
    if args.rle is not None:
        try:
            payload = json.loads(args.rle.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise SystemExit(f"--rle {str(args.rle)!r}: cannot read it as JSON ({err})") from None
        entries = payload.get("regions", payload) if isinstance(payload, dict) else payload
        if not isinstance(entries, list):
            raise SystemExit(f"--rle {str(args.rle)!r}: expected a list of regions or {{'regions': [...]}}")
        specs += [e["segmentation"] if isinstance(e, dict) and "segmentation" in e else e for e in entries]
    segment = bool(args.segment_boxes or args.sam)
    specs += [{"box": _numbers(b, 4, "--box", "x0,y0,x1,y1"), "segment": segment} for b in args.box]
    specs += [{"point": _numbers(p, 2, "--point", "x,y")} for p in args.point]
    return specs


def _load(args: argparse.Namespace):
    """(image, masks, service) for describe/chat."""
    import numpy as np

    from osprey.image import load_image
    from osprey.inference.providers import ProviderError
    from osprey.inference.regions import RegionError, to_masks
    from osprey.serve.service import load_service

    if args.image is None:
        args.image = EXAMPLES / "scene.png"
        if not (args.mask or args.rle or args.box or args.point or args.everything):
            args.rle = EXAMPLES / "scene.json"
    try:
        image = load_image(args.image)
    except (OSError, ValueError) as err:
        raise SystemExit(f"image {str(args.image)!r}: {err}") from None
    specs = _region_specs(args)
    if not specs and not args.everything:
        raise SystemExit("no regions given: use --mask, --rle, --box, --point or --everything")
    try:
        service = load_service(args.model, sam_checkpoint=args.sam, sam_type=args.sam_type,
                               max_regions=args.max_regions, device=args.device, dtype=args.dtype)
    except ProviderError as err:
        raise SystemExit(f"mask provider: {err}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if service.random_init:
        print(f"NOTE: {service.note}", file=sys.stderr)
    try:
        masks = to_masks(specs, image.height, image.width, provider=service.provider, image=image,
                         max_regions=args.max_regions)
        if args.everything:
            found = [m for m in service.provider.everything(image) if m.any()]
            masks = np.concatenate([masks, np.stack(found)[: max(0, args.max_regions - len(masks))]]) if found else masks
    except (RegionError, ProviderError, ValueError) as err:
        raise SystemExit(f"regions: {err}") from None
    if len(masks) == 0:
        raise SystemExit("no regions: --everything found no segment")
    return image, masks, service


# --------------------------------------------------------------------------------------- describe


def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="describe regions of an image (masks, RLE, boxes, clicks, everything)",
                       description="Describe every given region of IMAGE; writes overlay.png and answers.json. "
                       "Without arguments it runs on the bundled example image and its masks.")
    _add_region_flags(p)
    p.add_argument("--detailed", action="store_true", help="detailed instead of short descriptions")
    p.add_argument("--category", action="store_true", help="ask for the category (one word or phrase)")
    p.add_argument("--question", default=None, help="custom question naming the region <region1>")
    _add_model_flags(p)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("outputs/describe"), help="folder for overlay.png and answers.json")
    p.set_defaults(func=_run_describe)


def _run_describe(args: argparse.Namespace) -> int:
    from osprey.masks import mask_record
    from osprey.model.generation import DecodingOptions
    from osprey.overlay import save_overlay

    start = time.perf_counter()
    question = args.question or ("detailed" if args.detailed else "category" if args.category else "short")
    if args.question:
        _check_question(args.question, 1)
    image, masks, service = _load(args)
    try:
        answers = service.describe(image, masks, question, DecodingOptions(max_new_tokens=args.max_new_tokens),
                                   lambda *_: None)
    except ValueError as err:
        raise SystemExit(f"describe: {err}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    save_overlay(image, list(masks), args.out / "overlay.png")
    record = {"image": str(args.image), "model": str(args.model), "random_init": service.random_init,
              "question": question, "provider": service.provider.name, "device": str(service.predictor.device),
              "dtype": service.dtype,
              "regions": [{**mask_record(i, m), "answer": a} for i, (m, a) in enumerate(zip(masks, answers, strict=True))]}
    (args.out / "answers.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
    for i, answer in enumerate(answers, 1):
        print(f"region {i}: {answer}")
    print(f"wrote {args.out / 'overlay.png'} and {args.out / 'answers.json'} ({time.perf_counter() - start:.1f} s)")
    return 0


def _check_question(text: str, regions: int) -> str:
    from osprey.serve.http import BadRequest
    from osprey.serve.payloads import check_text

    try:
        return check_text(text, regions)
    except BadRequest as err:
        raise SystemExit(str(err)) from None


# ------------------------------------------------------------------------------------------- chat


def _add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="interactive chat about regions of an image (<region1>, <region2>, ...)",
                       description="Type questions that name regions as <region1>, <region2>, ... in the order the "
                       "regions were given. The image is encoded once. Commands: /regions, /reset, /quit.")
    _add_region_flags(p)
    _add_model_flags(p)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.set_defaults(func=_run_chat)


def _run_chat(args: argparse.Namespace) -> int:
    from osprey.model.generation import DecodingOptions
    from osprey.serve.http import BadRequest
    from osprey.serve.payloads import check_text

    image, masks, service = _load(args)
    session = service.predictor.chat(service.encode(image), masks,
                                     options=DecodingOptions(max_new_tokens=args.max_new_tokens))
    count = len(masks)
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
            session.reset()
            print("(history cleared)")
            continue
        if text == "/regions":
            for k, mask in enumerate(masks, 1):
                ys, xs = mask.nonzero()
                print(f"<region{k}>: {int(mask.sum())} px, box x {xs.min()}..{xs.max()} y {ys.min()}..{ys.max()}")
            continue
        try:
            check_text(text, count)
        except BadRequest as err:
            print(f"error: {err}")
            continue
        try:
            session.send(text, on_token=lambda piece: print(piece, end="", flush=True))
        except ValueError as err:
            print(f"error: {err}")
            continue
        print()
    return 0


# ------------------------------------------------------------------------------------------ serve


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP API (describe, OpenAI-compatible chat, segment) and the web demo",
                       description="Serve the model over HTTP. Binds 127.0.0.1 unless --host says otherwise; "
                       "see docs/serving.md.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    _add_model_flags(p)
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /v1 calls")
    p.add_argument("--token-file", type=Path, default=None, help="read the token from this file (keeps it out of ps)")
    p.add_argument("--ui", action="store_true", help="serve the web demo at /")
    p.add_argument("--queue-size", type=int, default=8, help="requests waiting for the model; more get 429")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request before 504")
    p.add_argument("--max-body-mb", type=float, default=16.0)
    p.add_argument("--max-regions", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=512, help="the most tokens a client may ask for")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from osprey.inference.providers import ProviderError
    from osprey.serve.api import create_app
    from osprey.serve.settings import ServeSettings

    token = args.token
    if args.token_file is not None:
        token = args.token_file.read_text().strip()
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(f"WARNING: serving on {args.host} without --token: anyone who can reach this port can use the "
              "model", file=sys.stderr)
    try:
        settings = ServeSettings(model=args.model, host=args.host, port=args.port, token=token,
                                 sam_checkpoint=args.sam, sam_type=args.sam_type, device=args.device, dtype=args.dtype,
                                 ui=args.ui,
                                 queue_size=args.queue_size, request_timeout_s=args.timeout,
                                 max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_regions=args.max_regions,
                                 max_new_tokens=args.max_new_tokens,
                                 default_new_tokens=min(128, args.max_new_tokens))
        app = create_app(settings)
    except (ValueError, ProviderError) as err:
        raise SystemExit(f"serve: {err}") from None
    if app.state.service.random_init:
        print(f"NOTE: {app.state.service.note}", file=sys.stderr)
    print(f"serving on http://{args.host}:{args.port}" + (" (demo at /)" if args.ui else ""), file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
