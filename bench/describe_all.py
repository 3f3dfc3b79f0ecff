"""Describe every region of one image: the batched predictor vs. the official one-region-at-a-time path.

Official method (the reference, osprey-official.md §7.1): for each region separately, load and
preprocess the image, run the vision tower, build the full prompt, prefill it and decode greedily
with a KV cache at batch 1. Ours: encode the image once, compute every region's tokens in one
mask-extractor pass, prefill the shared system+image prefix once and decode all regions as one
left-padded batch (``RegionPredictor.describe``). Same weights, same prompt ("short" demo
question); the greedy answers must be identical, else the run fails.

Generation is fixed-length (``stop_at_eos=False``: EOS does not stop a row), so both paths decode
exactly ``--max-new-tokens`` tokens per region whatever the (random) weights say: a fair cost
comparison. Presets load with random weights for everything the preset does not ship (the vision
tower, projector and mask extractor; for ``osprey_7b_1layer`` the LLM layer too): answers are
noise, timings are real. Prints a Markdown table and ends with
``RESULT speedup_n8=<official/ours at N=8> n8_over_n1=<ours N=8 / ours N=1>`` (wall clock, min of
``--repeats`` interleaved runs), followed by the same two ratios in process CPU time.

``--phases`` adds a second table: where ours spends its time at each N (the one prefill of the
packed prompt, then the decoding steps), and what ``ours N / N=1`` would be if decoding N rows per
step cost exactly what one row costs, the bound that batching the decode cannot beat.

    .venv/bin/python bench/describe_all.py --preset small [--regions 1,2,4,8,16] [--max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from transformers import DynamicCache

import osprey  # (torchvision shim first; also locates the bundled assets)
from osprey.image import load_image, preprocess
from osprey.inference.batch import BEGIN
from osprey.inference.predictor import QUESTIONS, RegionPredictor
from osprey.inference.regions import to_masks
from osprey.model.generation import DecodingOptions
from osprey.model.loading import load_model
from osprey.model.osprey import OspreyModel, RegionBatch
from osprey.text.conversation import Turn
from osprey.text.geometry import region_texts
from osprey.text.render import render_conversation
from osprey.text.tokenizer import TextTokenizer

EXAMPLES = Path(osprey.__file__).parent / "assets" / "examples"


def example_masks(count: int) -> tuple[Path, np.ndarray]:
    """The bundled coins image, its annotated coin masks, then synthetic discs on a grid up to ``count``."""
    record = json.loads((EXAMPLES / "coins.json").read_text())
    height, width = record["height"], record["width"]
    specs: list = [region["segmentation"] for region in record["regions"]][:count]
    y, x = np.mgrid[0:height, 0:width]
    side = int(np.ceil(np.sqrt(max(count, 1))))
    cell_h, cell_w = height / side, width / side
    for k in range(count - len(specs)):
        cy, cx = (k // side + 0.5) * cell_h, (k % side + 0.5) * cell_w
        radius = 0.35 * min(cell_h, cell_w) * (0.6 + 0.4 * ((k * 7) % 5) / 4)
        specs.append((y - cy) ** 2 + (x - cx) ** 2 <= radius**2)
    return EXAMPLES / "coins.png", to_masks(specs, height, width)


@torch.no_grad()
def official_describe(model: OspreyModel, tokenizer: TextTokenizer, predictor: RegionPredictor, image: Path,
                      masks: np.ndarray, question: str, steps: int) -> list[str]:
    """One region at a time, everything recomputed per region, greedy with a KV cache at batch 1."""
    vision = model.config.vision
    device = predictor.device
    embedding = model.language_model.get_input_embeddings()
    answers = []
    for mask in masks:
        pixels = preprocess(load_image(image), vision.image_size, vision.mean, vision.std)[None].to(device)
        rendered = render_conversation(
            [Turn("user", BEGIN + question)], template=predictor.template, tokenizer=tokenizer,
            slots=model.slots, num_image_tokens=model.num_image_tokens, num_regions=1, add_generation_prompt=True,
            region_texts=region_texts([mask], model.config.region_text),  # None for the official layout
        )
        ids = torch.tensor([rendered.input_ids], device=device)  # (1, L)
        region = RegionBatch([torch.from_numpy(mask).float()[None].to(device)])
        out = model(ids, pixel_values=pixels, regions=region, cache=DynamicCache(), use_cache=True, logits_to_keep=1)
        tokens: list[int] = []
        position = ids.shape[1]
        for step in range(steps):
            token = out.logits[:, -1].float().argmax(-1)  # (1,)
            tokens.append(int(token))
            if step == steps - 1:
                break
            out = model.forward_embeds(embedding(token[:, None]), position_ids=torch.tensor([[position]], device=device),
                                       cache=out.cache, use_cache=True)
            position += 1
        answers.append(tokenizer.decode(tokens).strip())
    return answers


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, process CPU seconds, result). CPU time is reported beside wall time because
    the machine's 2 cores are shared: wall time swings with other work, CPU time much less."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu, value


class PhaseClock:
    """Times every ``model.forward_embeds`` call of one ``describe``: the first is the prefill."""

    def __init__(self, model: OspreyModel) -> None:
        self.model, self.forward = model, model.forward_embeds
        self.calls: list[tuple[int, float]] = []  # (sequence length, seconds)

    def __enter__(self) -> PhaseClock:
        def clocked(embeds, **kwargs):
            wall, _cpu, out = timed(lambda: self.forward(embeds, **kwargs))
            self.calls.append((embeds.shape[1], wall))
            return out

        self.model.forward_embeds = clocked
        return self

    def __exit__(self, *exc) -> None:
        del self.model.forward_embeds  # back to the class's method


def phase_table(predictor: RegionPredictor, image: Path, masks: np.ndarray, counts: list[int], question: str,
                options: DecodingOptions, repeats: int) -> None:
    """Ours at each N split into prefill and decoding (min of ``repeats``), and the N/N=1 bound."""
    rows = {}
    for _ in range(repeats):
        for n in counts:
            with PhaseClock(predictor.model) as clock:
                total, _cpu, _ = timed(lambda n=n: predictor.describe(image, masks[:n], question, options))
            (tokens, prefill), steps = clock.calls[0], [seconds for _, seconds in clock.calls[1:]]
            decode = sum(steps)
            old = rows.get(n)
            if old is None or total < old[0]:
                rows[n] = (total, tokens, prefill, len(steps), decode)
    print("\n| regions N | ours total (s) | prefill tokens | prefill (s) | decode steps | decode per step (ms) "
          "| rest (s) | ours N / N=1 | ... if N rows decoded at one row's cost |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = rows.get(1)  # the N = 1 run, as in the first table ("-" without one)
    for n in counts:
        total, tokens, prefill, steps, decode = rows[n]
        per_step = f"{1000 * decode / steps:.1f}" if steps else "-"
        ratios = "- | -"
        if base:
            bound = total - decode + base[4]  # N's time with N=1's decoding in place of its own
            ratios = f"{total / base[0]:.2f} | {bound / base[0]:.2f}"
        print(f"| {n} | {total:.3f} | {tokens} | {prefill:.3f} | {steps} | {per_step} | {total - prefill - decode:.3f} "
              f"| {ratios} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="small | osprey_7b_1layer | tiny")
    parser.add_argument("--regions", default="1,2,4,8,16", help="comma-separated region counts N")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell, interleaved; the minimum is kept")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default: on shared cores, multi-threaded OpenMP stalls whenever "
                             "another job takes a core, which swamps the comparison")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="model precision (the mask extractor stays float32)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, or cuda[:K]: the model is built directly on that device (no CPU copy first)")
    parser.add_argument("--question", default="short", help=f"one of {sorted(QUESTIONS)} or text with <region1>")
    parser.add_argument("--phases", action="store_true",
                        help="also print ours split into prefill and decoding at each N, and the N / N=1 bound "
                             "if N rows decoded at one row's cost (extra runs; printed before the RESULT line)")
    args = parser.parse_args()
    counts = [int(n) for n in args.regions.split(",")]
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    with torch.device(args.device):
        model, tokenizer, random_init = load_model(args.preset, seed=0)
    model.to(args.device)
    if args.dtype == "bfloat16":
        model.set_precision(torch.bfloat16)
    load_s = time.perf_counter() - start
    predictor = RegionPredictor(model, tokenizer)
    image, masks = example_masks(max(counts))
    question = QUESTIONS.get(args.question, args.question)
    options = DecodingOptions(max_new_tokens=args.max_new_tokens, stop_at_eos=False)
    load_before = os.getloadavg()[0]

    predictor.describe(image, masks[:1], args.question, options)  # warm-up (first-call allocations)
    best: dict[tuple[str, int], tuple[float, float]] = {}
    for repeat in range(args.repeats):
        for n in counts:
            ours_wall, ours_cpu, ours = timed(lambda n=n: predictor.describe(image, masks[:n], args.question, options))
            ref_wall, ref_cpu, official = timed(lambda n=n: official_describe(
                model, tokenizer, predictor, image, masks[:n], question, args.max_new_tokens))
            if ours != official:
                diff = [(i, a, b) for i, (a, b) in enumerate(zip(ours, official, strict=True)) if a != b]
                raise SystemExit(f"N={n}: greedy answers differ (region, ours, official): {diff[:3]}")
            for key, wall, cpu in ((("ours", n), ours_wall, ours_cpu), (("official", n), ref_wall, ref_cpu)):
                old = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(old[0], wall), min(old[1], cpu))
            print(f"run {repeat + 1} N={n}: official {ref_wall:.2f} s wall / {ref_cpu:.2f} s CPU, "
                  f"ours {ours_wall:.2f} s wall / {ours_cpu:.2f} s CPU; answers identical", flush=True)
    load_after = os.getloadavg()[0]

    weights = ("SmolLM2-135M-Instruct LLM weights, random init for vision tower/projector/mask extractor"
               if args.preset == "small" else "random init for every part")
    where = (torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda")
             else f"{torch.get_num_threads()} threads")
    print(f"\nDescribe all regions, preset {args.preset} ({args.dtype}; {weights if random_init else 'checkpoint'}), "
          f"image {image.name}, {args.max_new_tokens} new tokens per region (fixed length, EOS ignored), "
          f"{where}, min of {args.repeats} interleaved runs, model load {load_s:.1f} s, "
          f"1-min load average {load_before:.1f} before / {load_after:.1f} after (2 cores)\n")
    print("| regions N | official wall (s) | ours wall (s) | speedup wall | ours N / N=1 wall "
          "| official CPU (s) | ours CPU (s) | speedup CPU | ours N / N=1 CPU | identical greedy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    base = best.get(("ours", 1))
    for n in counts:
        (o_wall, o_cpu), (s_wall, s_cpu) = best[("official", n)], best[("ours", n)]
        scale_wall = f"{s_wall / base[0]:.2f}" if base else "-"
        scale_cpu = f"{s_cpu / base[1]:.2f}" if base else "-"
        print(f"| {n} | {o_wall:.2f} | {s_wall:.2f} | {o_wall / s_wall:.2f}x | {scale_wall} "
              f"| {o_cpu:.2f} | {s_cpu:.2f} | {o_cpu / s_cpu:.2f}x | {scale_cpu} | yes |")
    result = "RESULT speedup_n8=nan n8_over_n1=nan"
    if ("ours", 8) in best and base:
        (o_wall, o_cpu), (s_wall, s_cpu) = best[("official", 8)], best[("ours", 8)]
        result = (f"RESULT speedup_n8={o_wall / s_wall:.2f} n8_over_n1={s_wall / base[0]:.2f} "
                  f"cpu_speedup_n8={o_cpu / s_cpu:.2f} cpu_n8_over_n1={s_cpu / base[1]:.2f}")
    if args.phases:
        print(f"\nOurs by phase (min of {args.repeats} further runs per N):")
        phase_table(predictor, image, masks, counts, args.question, options, args.repeats)
    print(f"\n{result}")


if __name__ == "__main__":
    main()
