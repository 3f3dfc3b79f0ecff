"""Osprey training step vs a bare-LLM step over the same tokens (issue: vision + mask work stay small).

    .venv/bin/python bench/train_step.py --preset small [--batch 4] [--steps 5]

Both steps run forward + backward + AdamW on the stage-3 trainable set (LLM, projector, mask
extractor; the tower frozen as in Osprey), bf16 autocast, on one real batch of the synthetic world
(short-form conversations: every region of the image listed, ~25 questions). The bare-LLM step feeds
the same ids (image/region slots replaced by ordinary text ids), the same attention mask and labels
to the language model alone, so the difference is exactly the vision tower, projector, mask
extractor and splice. Steps alternate (Osprey, LLM, Osprey, ...) so machine-load drift hits both.
Prints a Markdown table and ``RESULT ratio=<osprey step time / LLM step time> ...``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def main() -> None:
    import osprey  # noqa: F401
    from osprey.config import get_preset
    from osprey.data.dataset import ModelTransform, RegionDataset, collate
    from osprey.data.mixtures import mixture_from_dict
    from osprey.model.language_model import tokenizer_for
    from osprey.model.osprey import RegionBatch, build_model
    from osprey.synthetic import WorldConfig
    from osprey.synthetic.writer import train_seeds, write_split
    from osprey.train.stages import STAGES, set_trainable

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind (after 1 warm-up)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-bf16", action="store_true", help="float32 instead of bf16 autocast")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = get_preset(args.preset)
    model = build_model(config)
    tokenizer = tokenizer_for(config.language_model)
    set_trainable(model, STAGES[3].trains)

    with tempfile.TemporaryDirectory() as tmp:
        size = config.vision.image_size
        write_split(tmp, train_seeds(args.batch), WorldConfig(image_size=max(64, size)), split="train")
        mixture = mixture_from_dict([{"parser": "osprey_short_form", "annotations": "annotations/osprey_short_form.json",
                                      "images": "images"}]).under(tmp)
        dataset = RegionDataset(mixture, ModelTransform.for_model(model, tokenizer))
        batch = collate([dataset[i] for i in range(args.batch)], pad_id=tokenizer.pad_id)

    slots = model.slots
    is_slot = (batch.input_ids == slots.image) | (batch.input_ids == slots.mask) | (batch.input_ids == slots.pos)
    text_ids = batch.input_ids.masked_fill(is_slot, tokenizer.eos_id + 1)  # ordinary vocabulary ids
    regions = RegionBatch(batch.masks)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=not args.no_bf16)
    params = [p for p in model.parameters() if p.requires_grad]
    llm_params = [p for p in model.language_model.parameters() if p.requires_grad]
    opt_osprey = torch.optim.AdamW(params, lr=1e-5)
    opt_llm = torch.optim.AdamW(llm_params, lr=1e-5)

    def osprey_step() -> None:
        with autocast:
            out = model(batch.input_ids, batch.pixel_values, regions=regions,
                        attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
        opt_osprey.step()
        opt_osprey.zero_grad(set_to_none=True)

    def llm_step() -> None:
        with autocast:
            out = model.forward_embeds(model.language_model.get_input_embeddings()(text_ids),
                                       attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
        opt_llm.step()
        opt_llm.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"osprey": [], "llm": []}
    model.train()
    model.vision_encoder.eval()
    for i in range(args.steps + 1):
        for name, fn in (("osprey", osprey_step), ("llm", llm_step)):
            t0 = time.perf_counter()
            fn()
            if i:  # step 0 warms up both
                times[name].append(time.perf_counter() - t0)
    tokens = int(batch.attention_mask.sum())
    osprey_t, llm_t = statistics.median(times["osprey"]), statistics.median(times["llm"])
    ratio = osprey_t / llm_t
    print(f"preset {args.preset}: batch {args.batch}, {batch.input_ids.shape[1]} max length, {tokens} tokens, "
          f"{model.num_image_tokens} image tokens + {regions.count} regions, "
          f"{'bf16 autocast' if not args.no_bf16 else 'fp32'}, {torch.get_num_threads()} threads, "
          f"median of {args.steps} alternating steps\n")
    print("| step | median s | tokens/s |")
    print("|---|---:|---:|")
    print(f"| Osprey (tower + projector + mask extractor + LLM) | {osprey_t:.3f} | {tokens / osprey_t:,.0f} |")
    print(f"| bare LLM, same ids/mask/labels | {llm_t:.3f} | {tokens / llm_t:,.0f} |")
    print(f"| ratio Osprey / LLM | {ratio:.3f} | |")
    print(f"\nRESULT ratio={ratio:.3f} osprey_tokens_per_s={tokens / osprey_t:.0f} llm_tokens_per_s={tokens / llm_t:.0f}"
          f" preset={args.preset}")


if __name__ == "__main__":
    main()
