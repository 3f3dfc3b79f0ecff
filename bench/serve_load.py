"""Load on a real server: C concurrent clients, one row at a time vs continuous batching.

Starts ``osprey serve`` (a subprocess, a real socket) with the bundled model twice in one run:
``--max-batch-rows 1`` (one request at a time, as before continuous batching) and
``--max-batch-rows 16`` (continuous batching), side by side; for each C the two modes run one
after the other, so a change in the machine's load hits both. Both run with ``--ignore-eos``, so every answer is
exactly ``--tokens`` new tokens (a fixed amount of work per request). For each C in ``--clients``,
C clients (threads) each send ``--requests`` ``/v1/describe`` requests one after another, each about
one region of its own image (client c's image differs from every other client's); all clients of a
C start together. Measured per mode and C: wall time, regions/s, tokens/s, p50/p95 latency. Every
answer of one mode is compared with the same request's answer in the other (greedy, fp32).

The physical bound is measured in the same run, in a fresh process, after the servers stop: one
decoding step of the running batch (:class:`osprey.model.continuous.RunningBatch`) for 1 and for
C rows of real prompts, and one row's prefill; ``bound_cC = C (p + T s1) / (C p + T sC)`` is the
best throughput ratio batching can give for C requests of T tokens (p: prefill per row, s1/sC: a
step of 1/C rows). Then the cache: a first and a second question on a new image (1 new token,
so the prefill dominates), cold vs warm, against the continuous server.

Prints Markdown tables, then ``RESULT throughput_ratio_c8=... p95_ratio_c8=... identical=1|0
bound_c8=... cache_speedup=... nproc=... load=...`` (p95_ratio: batching's p95 / one-at-a-time's;
below 1 is better).

    .venv/bin/python bench/serve_load.py            # C = 1, 4, 8, 16; 1 request per client
    .venv/bin/python bench/serve_load.py --quick    # C = 1, 8; 1 request per client
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

import osprey  # (torchvision shim first; also locates the bundled assets)

EXAMPLES = Path(osprey.__file__).parent / "assets" / "examples"
ROOT = Path(__file__).resolve().parents[1]


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def images(count: int) -> list[Image.Image]:
    """``count`` different pictures: crops and flips of the bundled examples."""
    sources = [Image.open(EXAMPLES / name).convert("RGB") for name in ("scene.png", "coins.png")]
    out = []
    for index in range(count):
        source = sources[index % 2]
        w, h = source.size
        dx, dy = (index // 2) % 4 * w // 16, (index // 8) % 2 * h // 12
        crop = source.crop((dx, dy, dx + w * 3 // 4, dy + h * 3 // 4))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if index % 3 == 1 else crop)
    return out


def png64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def region(image: Image.Image, turn: int) -> dict:
    w, h = image.size
    x, y = (turn * w // 7) % (w // 2), (turn * h // 5) % (h // 2)
    return {"box": [x, y, x + w // 2, y + h // 2]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``osprey serve`` in a subprocess on a free loopback port."""

    def __init__(self, rows: int, tokens: int, device: str, threads: int | None) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "osprey", "serve", "--model", "bundled", "--port", str(self.port),
                   "--max-batch-rows", str(rows), "--ignore-eos", "--max-new-tokens", str(tokens),
                   "--queue-size", "64", "--timeout", "900", "--device", device]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("server did not start within 600 s")

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def describe(url: str, image64: str, box: dict, tokens: int) -> tuple[float, str]:
    start = time.perf_counter()
    response = httpx.post(f"{url}/v1/describe", timeout=900,
                          json={"image": image64, "regions": [box], "mode": "short", "max_new_tokens": tokens})
    if response.status_code != 200:
        raise SystemExit(f"describe failed: {response.status_code} {response.text[:500]}")
    return time.perf_counter() - start, response.json()["regions"][0]["answer"]


def load(url: str, clients: int, requests: int, pictures: list[str], boxes: list[list[dict]], tokens: int) -> dict:
    def client(c: int) -> list[tuple[float, str]]:
        return [describe(url, pictures[c], boxes[c][r], tokens) for r in range(requests)]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    latencies = sorted(t for rows in results for t, _ in rows)
    regions = clients * requests
    return {"wall": wall, "regions_s": regions / wall, "tokens_s": regions * tokens / wall,
            "p50": statistics.median(latencies), "p95": float(np.percentile(latencies, 95)),
            "answers": [a for rows in results for _, a in rows]}


def cache_speedup(url: str, image: Image.Image) -> tuple[float, float, dict]:
    """(cold s, warm s, /healthz cache) of a first and a second one-token question on a new image."""
    picture = png64(image)
    cold, _ = describe(url, picture, region(image, 0), 1)
    warm = min(describe(url, picture, region(image, turn), 1)[0] for turn in (1, 2, 3))
    return cold, warm, httpx.get(f"{url}/healthz").json()["cache"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def step_costs(predictor, rows: list[int], tokens: int, image: Image.Image) -> tuple[float, dict[int, float]]:
    """(prefill s per row, {rows: s per decoding step}) of the running batch on real prompts."""
    from osprey.inference.batch import Query
    from osprey.inference.predictor import QUESTIONS
    from osprey.model.continuous import RunningBatch, prefill

    model = predictor.model
    encoded = predictor.encode(image)
    h, w = encoded.size
    masks = np.zeros((1, h, w), bool)
    masks[0, h // 4:h * 3 // 4, w // 4:w * 3 // 4] = True
    batch = predictor.prepare(encoded, masks, [Query(QUESTIONS["short"], (0,))])
    prefill(model, batch.embeds, batch.attention_mask, batch.prefix_embeds)  # warm-up
    sync(predictor.device)
    start = time.perf_counter()
    group = prefill(model, batch.embeds, batch.attention_mask, batch.prefix_embeds)
    sync(predictor.device)
    per_row = time.perf_counter() - start
    costs = {}
    for count in rows:
        running = RunningBatch(model)
        for _ in range(count):
            running.join(group)
        token = torch.full((count,), int(group.logits.argmax()), dtype=torch.long, device=running.device)
        for _ in range(3):
            running.step(token)
        sync(running.device)
        start = time.perf_counter()
        steps = min(tokens, 24)
        for _ in range(steps):
            running.step(token)
        sync(running.device)
        costs[count] = (time.perf_counter() - start) / steps
    return per_row, costs


def bound_in_fresh_process(rows: list[int], args: argparse.Namespace) -> tuple[float, dict[int, float]]:
    """:func:`step_costs` in a new process, on a thread, as a server runs its model. (In this long-lived
    client process the same timings came out 3-5x slower on the shared 2-core machine.)"""
    command = [sys.executable, __file__, "--bound-only", "--clients", ",".join(map(str, rows)),
               "--tokens", str(args.tokens), "--device", args.device]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    values = json.loads(out.strip().splitlines()[-1])
    return values["prefill"], {int(k): v for k, v in values["steps"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,8,16", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=1, help="requests per client, one after another")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer (EOS ignored)")
    parser.add_argument("--quick", action="store_true", help="C = 1, 8 and 1 request per client")
    parser.add_argument("--device", default="cpu", help="where the servers (and the bound's timing) run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: torch's)")
    parser.add_argument("--key", type=int, default=8, help="the C whose ratios the RESULT line reports")
    parser.add_argument("--bound-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bound_only:  # the child of bound_in_fresh_process
        from osprey.inference.predictor import RegionPredictor
        from osprey.model.loading import load_model, resolve_device

        rows = [int(c) for c in args.clients.split(",")]
        model, tokenizer, _ = load_model("bundled", device=resolve_device(args.device), dtype="auto")
        predictor = RegionPredictor(model, tokenizer)
        with ThreadPoolExecutor(1) as pool:
            prefill_s, steps = pool.submit(step_costs, predictor, rows, args.tokens, images(1)[0]).result()
        print(json.dumps({"prefill": prefill_s, "steps": steps}))
        return 0
    levels = [1, 8] if args.quick else [int(c) for c in args.clients.split(",")]
    requests = 1 if args.quick else args.requests
    pictures_raw = images(max(levels) + 1)
    pictures = [png64(p) for p in pictures_raw]
    boxes = [[region(p, c + r) for r in range(requests)] for c, p in enumerate(pictures_raw)]

    load_before = loadavg()
    runs: dict[tuple[str, int], dict] = {}
    modes = (("one at a time", 1), ("continuous", 16))
    servers = [Server(rows, args.tokens, args.device, args.threads) for _, rows in modes]  # load side by side
    try:
        for server in servers:
            server.__enter__()
            describe(server.url, pictures[-1], region(pictures_raw[-1], 0), 2)  # warm-up (not measured)
        for clients in levels:  # the two modes alternate, so a change of the machine's load hits both
            for (mode, _), server in zip(modes, servers, strict=True):
                runs[mode, clients] = load(server.url, clients, requests, pictures, boxes, args.tokens)
                print(f"{mode} C={clients}: {runs[mode, clients]['wall']:.1f} s", file=sys.stderr, flush=True)
        cold, warm, cache = cache_speedup(servers[1].url, images(max(levels) + 2)[-1])
    finally:
        for server in servers:
            server.__exit__()
    if args.threads:
        torch.set_num_threads(args.threads)
    prefill_s, steps = bound_in_fresh_process(sorted({1, *levels}), args)
    same = all(runs["one at a time", c]["answers"] == runs["continuous", c]["answers"] for c in levels)

    print(f"## Serving under load: bundled model, {args.tokens} new tokens per region, {requests} request(s) "
          f"per client\n")
    print(f"nproc={os.cpu_count()}, load average before the timing runs: {' '.join(load_before)}\n")
    print("| mode | C | wall s | regions/s | tokens/s | p50 s | p95 s |")
    print("|---|---|---|---|---|---|---|")
    for (mode, clients), run in runs.items():
        print(f"| {mode} | {clients} | {run['wall']:.1f} | {run['regions_s']:.2f} | {run['tokens_s']:.1f} | "
              f"{run['p50']:.2f} | {run['p95']:.2f} |")
    print("\n| C | throughput ratio | p95 ratio | bound (measured step costs) | step s (C rows) |")
    print("|---|---|---|---|---|")
    ratios = {}
    for clients in levels:
        one, many = runs["one at a time", clients], runs["continuous", clients]
        bound = clients * (prefill_s + args.tokens * steps[1]) / (clients * prefill_s + args.tokens * steps[clients])
        ratios[clients] = (many["regions_s"] / one["regions_s"], many["p95"] / one["p95"], bound)
        print(f"| {clients} | {ratios[clients][0]:.2f} | {ratios[clients][1]:.2f} | {bound:.2f} | "
              f"{steps[clients] * 1000:.1f} ms |")
    print(f"\nprefill of one row {prefill_s * 1000:.0f} ms; cache: cold {cold * 1000:.0f} ms, warm "
          f"{warm * 1000:.0f} ms for a 1-token answer (hit rates: image {cache['image_hit_rate']}, prefix "
          f"{cache['prefix_hit_rate']}, {cache['bytes'] / 1e6:.1f} MB held)")
    key = args.key if args.key in ratios else max(ratios)
    load_now = loadavg()[0]
    print(f"RESULT throughput_ratio_c{key}={ratios[key][0]:.2f} p95_ratio_c{key}={ratios[key][1]:.2f} "
          f"identical={int(same)} bound_c{key}={ratios[key][2]:.2f} cache_speedup={cold / warm:.2f} "
          f"nproc={os.cpu_count()} load={load_now}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
