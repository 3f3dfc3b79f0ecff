"""Linear probe of a model's region tokens: how much of a region's position and size do they carry?

Encodes held-out synthetic scenes, takes every object's ``<mask>`` and ``<pos>`` token (as the LLM
receives them), fits a logistic regression from each token kind to the object's position word
(the synthetic world's 3 x 3 grid answer) and size word on one set of scenes and scores it on
another. High probe accuracy with chance-level answers means the information reaches the LLM but
the LLM does not read it.

    .venv/bin/python scripts/probe_region_tokens.py [--model bundled] [--train 150] [--test 60]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import osprey  # noqa: F401  (torchvision shim first)
from osprey.inference.predictor import RegionPredictor
from osprey.model.loading import load_model
from osprey.model.osprey import RegionBatch
from osprey.synthetic.facts import position_answer
from osprey.synthetic.world import generate_scene, render


def collect(predictor: RegionPredictor, seeds: range) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Region tokens and labels of every object with an unambiguous position answer."""
    tokens: dict[str, list[np.ndarray]] = {"mask": [], "pos": []}
    labels: dict[str, list[str]] = {"position": [], "size": []}
    model = predictor.model
    for seed in seeds:
        scene = generate_scene(seed)
        encoded = predictor.encode(render(scene))
        masks = torch.from_numpy(np.stack([obj.mask for obj in scene.objects])).float()
        with torch.no_grad():
            mask_tokens, pos_tokens = model.encode_regions(encoded.levels, RegionBatch([masks]))
        for i, obj in enumerate(scene.objects):
            answer = position_answer(scene, obj)
            if answer is None:
                continue
            tokens["mask"].append(mask_tokens[i].float().numpy())
            tokens["pos"].append(pos_tokens[i].float().numpy())
            labels["position"].append(answer)
            labels["size"].append(obj.size)
    return {k: np.stack(v) for k, v in tokens.items()}, labels


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled", help="bundled, a preset name or a model folder")
    parser.add_argument("--train", type=int, default=150, help="scenes to fit the probe on")
    parser.add_argument("--test", type=int, default=60, help="scenes to score it on")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, _ = load_model(args.model)
    predictor = RegionPredictor(model, tokenizer)
    base = 2_000_000_000  # test seeds, away from the evaluation's (10^9 + k)
    train_x, train_y = collect(predictor, range(base, base + args.train))
    test_x, test_y = collect(predictor, range(base + 10**8, base + 10**8 + args.test))
    print(f"\nLinear probe of region tokens, model {args.model}: {len(train_y['size'])} training regions, "
          f"{len(test_y['size'])} test regions\n")
    print("| token | label | probe accuracy | majority class | mean token norm |")
    print("|---|---|---|---|---|")
    for kind in ("pos", "mask"):
        for label in ("position", "size"):
            probe = LogisticRegression(max_iter=3000).fit(train_x[kind], train_y[label])
            truth = np.array(test_y[label])
            majority = max(float(np.mean(truth == c)) for c in set(test_y[label]))
            norm = float(np.linalg.norm(test_x[kind], axis=1).mean())
            print(f"| `<{kind}>` | {label} | {probe.score(test_x[kind], truth):.3f} | {majority:.3f} | {norm:.1f} |")


if __name__ == "__main__":
    main()
