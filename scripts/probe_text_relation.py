"""Can SmolLM2-135M-Instruct + LoRA learn a left/right relation from region geometry written as digits?

A text-only control for the ``region_text="geometry"`` experiments (docs/osprey-small.md): no image,
no region tokens, only the prompt layout of a two-region relation question with each region's
``{x=.. y=.. area=...}`` text (:func:`osprey.text.geometry.region_geometry_text`'s format), fresh
LoRA adapters (r 16 on attention and MLP, as the small recipe) and a constant learning rate.
Every ``--eval-every`` steps it scores ``--eval`` fresh questions by comparing the logits of
" left" and " right". Random positions are drawn afresh for every example (no epochs).

    .venv/bin/python scripts/probe_text_relation.py [--steps 300] [--lr 1e-3] [--batch 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import time

import torch

import osprey  # noqa: F401  (torchvision shim first)
from osprey.config import get_preset
from osprey.model.language_model import build_language_model, tokenizer_for

PREFIX = ("A chat between a curious user and an artificial intelligence assistant. USER: "
          "Ther are 2 part regions in the picture: ")
QUESTION = ". Is region1 to the left or to the right of region2? ASSISTANT:"
MARGIN = 8  # percent, as the synthetic world's RELATION_MARGIN (0.08)


def example(rng: random.Random) -> tuple[str, str]:
    x1 = rng.randrange(100)
    x2 = rng.randrange(100)
    while abs(x1 - x2) < MARGIN:
        x2 = rng.randrange(100)
    regions = [f"region{k}{{x={x:02d} y={rng.randrange(100):02d} area={rng.randrange(300):03d}}}"
               for k, x in ((1, x1), (2, x2))]
    return PREFIX + ",".join(regions) + QUESTION, " left" if x1 < x2 else " right"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--eval", type=int, default=40, help="questions per evaluation")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from peft import LoraConfig, get_peft_model

    config = get_preset("small")
    tokenizer = tokenizer_for(config.language_model)
    llm = build_language_model(config.language_model).to(torch.bfloat16)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    llm = get_peft_model(llm, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    trained = [p for p in llm.parameters() if p.requires_grad]
    for p in trained:
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(trained, lr=args.lr)
    rng = random.Random(args.seed)
    left, right = tokenizer.encode(" left")[0], tokenizer.encode(" right")[0]
    start = time.perf_counter()
    print("| step | loss | accuracy | seconds |\n|---:|---:|---:|---:|")
    for step in range(1, args.steps + 1):
        ids, labels = [], []
        for prompt, answer in (example(rng) for _ in range(args.batch)):
            p, a = tokenizer.encode(prompt), [*tokenizer.encode(answer), tokenizer.eos_id]
            ids.append(p + a)
            labels.append([-100] * len(p) + a)
        width = max(map(len, ids))
        x = torch.tensor([i + [tokenizer.pad_id] * (width - len(i)) for i in ids])
        y = torch.tensor([label + [-100] * (width - len(label)) for label in labels])
        attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = llm(input_ids=x, attention_mask=attention, labels=y).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % args.eval_every == 0:
            llm.eval()
            correct = 0
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                for _ in range(args.eval):
                    prompt, answer = example(rng)
                    logits = llm(input_ids=torch.tensor([tokenizer.encode(prompt)])).logits[0, -1]
                    correct += (answer == " left") == bool(logits[left] > logits[right])
            llm.train()
            print(f"| {step} | {loss.item():.3f} | {correct / args.eval:.2f} | {time.perf_counter() - start:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
