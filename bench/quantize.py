"""Weight-only int8 (and int4 where it runs) against float32: memory, load time, decode time, agreement.

    python bench/quantize.py [--presets osprey_7b_1layer] [--scenes 6] [--new-tokens 24]

For each model (``osprey_7b_1layer`` with random weights, and the bundled osprey-small):

* weight memory of the quantized Linear layers (the LLM's attention, MLP and ``lm_head``, and the
  projector), scales and zero points counted, and of the whole model (every parameter and buffer once);
* load time (``load_model(..., quantize=)``, from preset or folder to ready);
* per-token decode time: greedy decoding of the LLM with a KV cache from a 64-token prompt, batch 1,
  (time of N new tokens - time of 1) / (N - 1). ``int8`` on the CPU is
  :class:`osprey.model.quantize_cpu.CpuInt8Linear` (torch's int8 kernel, bfloat16 activations, when
  decoding); ``int8-torchao`` is the same quantization through torchao's own CPU Linear, for comparison;
* greedy agreement with float32 (bundled model only: its trained logits have real margins, random
  weights are near-ties everywhere): the region questions of ``--scenes`` synthetic test scenes
  (short description and category of every object) answered by both; agreement is the fraction of
  float32's answer tokens that the quantized answer has at the same position.

The last line: ``RESULT int8_memory_ratio=<linear bytes int8 / float32 on osprey_7b_1layer>
int8_agreement=<bundled> int8_decode_speedup=<float32 / int8 per-token time on osprey_7b_1layer>``.
int4 needs CUDA (:mod:`osprey.model.quantize` says why); on a CPU it is reported as skipped.
"""

from __future__ import annotations

import argparse
import time

import torch

import osprey  # noqa: F401  (torchvision shim first)
from osprey.model.loading import bundled_available, load_model
from osprey.model.quantize import INT4_ON_CPU, linear_weight_bytes, model_bytes, quantize_model

TORCHAO_CPU = "int8-torchao"  # int8 with torchao's own CPU Linear (no CpuInt8Linear): the comparison


def _load(spec: str, quantize: str, device: str, dtype: str):
    started = time.perf_counter()
    if quantize == TORCHAO_CPU:
        model, tokenizer, _ = load_model(spec, device=device, dtype=dtype, seed=0)
        quantize_model(model, "int8", cpu_kernel=False)
    else:
        model, tokenizer, _ = load_model(spec, device=device, dtype=dtype, quantize=quantize, seed=0)
    return model, tokenizer, time.perf_counter() - started


@torch.no_grad()
def decode_seconds_per_token(model, new_tokens: int, device: str) -> float:
    lm = model.language_model
    vocab = lm.get_input_embeddings().weight.shape[0]
    ids = torch.randint(10, min(vocab, 30000), (1, 64), generator=torch.Generator().manual_seed(0)).to(device)

    def run(n: int) -> float:
        best = float("inf")
        for _ in range(2):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            lm.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        return best

    return (run(new_tokens) - run(1)) / (new_tokens - 1)


def region_answers(model, tokenizer, scenes: int) -> list[list[int]]:
    """Token ids of the greedy answers to every object's short and category question."""
    from osprey.inference.predictor import RegionPredictor
    from osprey.model.generation import DecodingOptions
    from osprey.synthetic.seeds import test_seeds
    from osprey.synthetic.world import generate_scene

    predictor = RegionPredictor(model, tokenizer)
    options = DecodingOptions(max_new_tokens=32)
    out = []
    for seed in test_seeds(scenes):
        scene = generate_scene(seed)
        masks = torch.from_numpy(__import__("numpy").stack([o.mask for o in scene.objects]))
        for question in ("short", "category"):
            for answer in predictor.describe(scene.image, masks, question, options):
                out.append(tokenizer.encode(str(answer)))
    return out


def agreement(reference: list[list[int]], other: list[list[int]]) -> float:
    total = sum(len(r) for r in reference)
    same = sum(sum(a == b for a, b in zip(r, o)) for r, o in zip(reference, other))
    return same / max(total, 1)


def measure(spec: str, modes: list[str], args, *, answers: bool) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    reference = None
    for mode in ["none", *modes]:
        if mode == "int4" and not args.device.startswith("cuda"):
            rows[mode] = {"skipped": INT4_ON_CPU}
            continue
        if mode == TORCHAO_CPU and args.device != "cpu":
            continue
        dtype = "bfloat16" if mode == "int4" else args.dtype
        model, tokenizer, load_s = _load(spec, mode, args.device, dtype)
        row = {"linear": linear_weight_bytes(model), "model": model_bytes(model), "load_s": load_s,
               "token_s": decode_seconds_per_token(model, args.new_tokens, args.device)}
        if args.device.startswith("cuda"):
            row["cuda_peak"] = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        if answers:
            got = region_answers(model, tokenizer, args.scenes)
            reference = reference or got
            row["agreement"] = agreement(reference, got)
            row["answers"] = len(got)
        rows[mode] = row
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="*", default=["osprey_7b_1layer"])
    parser.add_argument("--modes", nargs="*", default=["int8", TORCHAO_CPU, "int4"])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="the unquantized precision (activations of all modes)")
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled model (its LLM package absent)")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {spec: measure(spec, args.modes, args, answers=False) for spec in args.presets}
    if bundled_available() and not args.no_bundled:
        results["bundled"] = measure("bundled", args.modes, args, answers=True)
    mib = 1024**2
    print(f"Weight-only quantization (torchao), device {args.device}, activations {args.dtype} (int4: bfloat16)\n")
    print("| model | weights | linear layers (MiB) | ratio | whole model (MiB) | load (s) | ms / token | "
          "greedy agreement |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for spec, rows in results.items():
        base = rows["none"]
        for mode, row in rows.items():
            if "skipped" in row:
                print(f"| {spec} | {mode} | skipped: {row['skipped']} ||||||")
                continue
            agree = f"{row['agreement']:.3f} ({row['answers']} answers)" if "agreement" in row else "n/a (random)"
            if "cuda_peak" in row:
                agree += f"; CUDA peak {row['cuda_peak'] / mib:,.0f} MiB, {1 / row['token_s']:.1f} tokens/s"
            print(f"| {spec} | {'float' if mode == 'none' else mode} | {row['linear'] / mib:,.1f} | "
                  f"{row['linear'] / base['linear']:.3f} | {row['model'] / mib:,.1f} | {row['load_s']:.1f} | "
                  f"{row['token_s'] * 1e3:.1f} | {agree} |")
    first = results[args.presets[0]]
    ratio = first["int8"]["linear"] / first["none"]["linear"]
    speedup = first["none"]["token_s"] / first["int8"]["token_s"]
    if TORCHAO_CPU in first:
        print(f"\nint8 decode on {args.presets[0]}: {first['none']['token_s'] / first['int8']['token_s']:.2f}x float32 "
              f"with CpuInt8Linear, {first['none']['token_s'] / first[TORCHAO_CPU]['token_s']:.2f}x with torchao's CPU Linear")
    agree = results["bundled"]["int8"]["agreement"] if "bundled" in results else float("nan")
    print(f"\nRESULT int8_memory_ratio={ratio:.3f} int8_agreement={agree:.3f} int8_decode_speedup={speedup:.2f}")


if __name__ == "__main__":
    main()
