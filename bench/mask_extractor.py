"""Vectorised mask extractor vs the official per-image loop, at Osprey-7B dimensions.

Prints a Markdown table and ends with ``RESULT speedup=...`` (per-image time / vectorised time,
both measured in this run on the same inputs). Outputs are checked equal (1e-5) before timing.

    .venv/bin/python bench/mask_extractor.py [--images 8] [--regions 20] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import osprey  # noqa: F401  (torchvision shim first)
from osprey.config import MaskExtractorConfig
from osprey.model.mask_extractor import MaskExtractor
from osprey.model.reference import official_per_image


def random_masks(images: int, regions: int, height: int, width: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Ellipse-like blobs of random size and position, a few tiny ones that vanish at coarse levels."""
    y = torch.arange(height).view(1, -1, 1).float()
    x = torch.arange(width).view(1, 1, -1).float()
    out = []
    for _ in range(images):
        cy = torch.rand(regions, 1, 1, generator=generator) * height
        cx = torch.rand(regions, 1, 1, generator=generator) * width
        ry = 2 + torch.rand(regions, 1, 1, generator=generator) * height / 3
        rx = 2 + torch.rand(regions, 1, 1, generator=generator) * width / 3
        out.append((((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1).float())
    return out


def timed(fn, repeats: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()  # warm-up
    sync()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()  # GPU work is asynchronous: wait for it before reading the clock
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda[:K] (inputs and weights on that device)")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    extractor = MaskExtractor(MaskExtractorConfig(), (192, 384, 768, 1536), 4096).eval().to(device)
    features = [torch.randn(args.images, c, s, s, generator=generator).to(device)
                for c, s in ((192, 128), (384, 64), (768, 32), (1536, 16))]
    masks = [m.to(device) for m in random_masks(args.images, args.regions, args.height, args.width, generator)]

    with torch.no_grad():
        ours = extractor(features, masks)
        ref_mask, ref_pos = official_per_image(extractor, features, masks)
        err = max(float((ours[0] - torch.cat(ref_mask)).abs().max()), float((ours[1] - torch.cat(ref_pos)).abs().max()))
        if err > 1e-5:
            raise SystemExit(f"vectorised output differs from the per-image path by {err:.3g} (> 1e-5)")
        t_loop = timed(lambda: official_per_image(extractor, features, masks), args.repeats, device)
        t_vec = timed(lambda: extractor(features, masks), args.repeats, device)

    n = args.images * args.regions
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} threads")
    print(f"Mask extractor, Osprey-7B dims, {args.images} images x {args.regions} regions "
          f"({args.height}x{args.width} masks), {where}, float32, median of {args.repeats}\n")
    print("| path | time (ms) | regions/s | max abs diff vs per-image |")
    print("|---|---|---|---|")
    print(f"| official per-image loop | {t_loop * 1e3:.1f} | {n / t_loop:.0f} | 0 |")
    print(f"| vectorised (ours) | {t_vec * 1e3:.1f} | {n / t_vec:.0f} | {err:.2g} |")
    print(f"\nRESULT speedup={t_loop / t_vec:.2f} images={args.images} regions={args.regions} max_abs_diff={err:.2g}")


if __name__ == "__main__":
    main()
