"""Small golden sets in the shared/golden format, made from other inputs (a seed picks them).

The recorded outputs come from our own code: these sets test that ``osprey parity`` reads the
format generally (stored mask tensors as the inputs, shape types it cannot rebuild, other shapes,
regions, prompts and image sizes, greedy ties of more than two ids), not the numerics, which
shared/golden itself checks against the official code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from osprey.golden import fixed_init_tensor, sin_tensor

SIN_RULE = "value[flat row-major index i] = sin(a*i + b), float64 -> float32"


def fingerprint(tensor: torch.Tensor) -> dict:
    values = tensor.detach().double()
    data = tensor.detach().float().contiguous().numpy().astype("<f4").tobytes()
    return {"sum": float(values.sum()), "sumsq": float((values * values).sum()),
            "first3": tensor.flatten()[:3].tolist(), "sha256_f32le": hashlib.sha256(data).hexdigest()}


def _parameters(shapes: dict[str, tuple[int, ...]]) -> tuple[list[dict], dict[str, torch.Tensor]]:
    state = {name: fixed_init_tensor(name, shape) for name, shape in shapes.items()}
    params = [{"name": name, "shape": list(shape), "fingerprint": fingerprint(state[name])}
              for name, shape in shapes.items()]
    return params, state


def random_masks(rng: np.random.Generator, height: int, width: int, count: int) -> tuple[list[dict], torch.Tensor]:
    """``count`` masks: circles (a type the tool does not rebuild), rectangles, and a union."""
    y, x = np.mgrid[0:height, 0:width]
    specs, built = [], []
    for index in range(count):
        if index == count - 1 and count > 2:
            specs.append({"type": "union", "of": [0, 1]})
            built.append(built[0] | built[1])
        elif index % 2 == 0:
            cx, cy = int(rng.integers(10, width - 10)), int(rng.integers(10, height - 10))
            r = int(rng.integers(4, min(height, width) // 3))
            specs.append({"type": "circle", "cx": cx, "cy": cy, "r": r, "rule": "(x-cx)^2 + (y-cy)^2 <= r^2"})
            built.append((x - cx) ** 2 + (y - cy) ** 2 <= r * r)
        else:
            x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            x1, y1 = x0 + int(rng.integers(3, width // 2)), y0 + int(rng.integers(3, height // 2))
            specs.append({"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": y1})
            built.append((x >= x0) & (x < x1) & (y >= y0) & (y < y1))
    return specs, torch.from_numpy(np.stack(built).astype(np.float32))


def _write(folder: Path, stem: str, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta["tensors"] = sorted(tensors)
    (folder / f"{stem}.json").write_text(json.dumps(meta))
    save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, str(folder / f"{stem}.safetensors"))


def write_set_a(folder: Path, seed: int) -> None:
    """A small mask extractor (other channels, embed, shape size) on other feature maps and masks."""
    from osprey.config import MaskExtractorConfig
    from osprey.model.mask_extractor import LEVEL_NAMES, MaskExtractor

    rng = np.random.default_rng(seed)
    channels = tuple(int(c) for c in rng.integers(4, 12, size=4))
    embed, out_dim, shape_size = 16, 24, int(rng.choice([8, 12]))
    extractor = MaskExtractor(MaskExtractorConfig(embed_dim=embed, shape_size=shape_size, shape_hidden=20), channels, out_dim)
    params, state = _parameters({k: tuple(v.shape) for k, v in extractor.state_dict().items()})
    extractor.load_state_dict(state)
    sizes = (32, 16, 8, 4)
    feats = {lvl: {"shape": [1, c, s, s], "a": float(rng.uniform(0.005, 0.05)), "b": float(k)}
             for k, (lvl, c, s) in enumerate(zip(LEVEL_NAMES, channels, sizes, strict=True))}
    height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
    specs, masks = random_masks(rng, height, width, 4)
    record: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        tokens, pos = extractor([sin_tensor(f["shape"], f["a"], f["b"]) for f in feats.values()], [masks], record=record)
    meta = {"set": "A_mask_extractor", "variant": f"factory seed {seed}", "parameters": params,
            "recommended_tolerances": {"default": {"atol": 1e-5, "rtol": 1e-5}},
            "input_spec": {"sin_rule": SIN_RULE, "feats": feats, "masks": specs, "H": height, "W": width,
                           "stored_input_tensor": "masks"}}
    _write(folder, f"factory_a_{seed}", meta, {"mask_tokens": tokens, "pos_tokens": pos, "masks": masks, **record})


def write_set_c(folder: Path, seed: int, image_size: int = 64, steps: int = 4, tie_step: int = 2) -> None:
    """A 1-layer LLaMA of width 64 with the official tower at ``image_size`` px, other masks and
    question; regime ``official`` (bf16) records a three-way greedy tie at ``tie_step`` in which our
    id is the third of the tied ids."""
    from osprey import parity
    from osprey.model.weights import build_empty, config_from_official, official_state_dict_shapes
    from osprey.text.render import collapse_image_slots

    rng = np.random.default_rng(seed)
    n_regions = int(rng.integers(1, 4))
    question = ("<image>\nThis provides an overview of the picture.\n"
                + " ".join("What is in <mask><pos>?" for _ in range(n_regions)) + " Using a short phrase.")
    config_json = {"vocab_size": 32000, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
                   "num_attention_heads": 4, "num_key_value_heads": 4, "hidden_act": "silu",
                   "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_scaling": None,
                   "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                   "mm_projector_type": "mlp2x_gelu", "model_type": "osprey"}
    height, width = int(rng.integers(40, 80)), int(rng.integers(40, 80))
    specs, masks = random_masks(rng, height, width, n_regions)
    image = {"shape": [1, 3, image_size, image_size], "a": float(rng.uniform(0.0005, 0.005)), "b": float(seed)}
    meta = {"set": "C_osprey_tiny_llm", "variant": f"factory seed {seed}", "config": config_json,
            "input_spec": {"sin_rule": SIN_RULE, "image": image, "masks": specs, "H": height, "W": width,
                           "stored_input_tensor": "input_masks", "max_new_tokens": steps}}
    config = config_from_official(config_json)
    config = config.replace(vision=type(config.vision)(image_size=image_size))
    shapes = {k: v for k, v in official_state_dict_shapes(build_empty(config)).items()}
    # (set C's parity checks names and shapes, not fingerprints: no need to hash 200 M values)
    meta["parameters"] = [{"name": name, "shape": list(shape)} for name, shape in shapes.items()]
    model = parity._load_golden_model(meta, config)
    rendered = _render(model, question)
    meta["prompt"] = {"question_raw": question, "prompt": "", "input_ids": collapse_image_slots(rendered, model.slots)}
    ids = parity._golden_prompt_ids(meta, model, parity.Report())
    meta["sequence"] = {"expanded_len": int(ids.shape[1])}
    tensors: dict[str, torch.Tensor] = {"input_masks": masks}
    results = {}
    for regime, tau in (("fp32", 1e-3), ("official", 0.02)):
        model.set_precision(torch.float32 if regime == "fp32" else torch.bfloat16)
        image_t = sin_tensor(image["shape"], image["a"], image["b"])
        outputs, generated, scores = parity._run_regime(model, ids, image_t, masks, steps)
        tensors.update({f"{regime}.{k}": v for k, v in outputs.items()})
        tensors[f"{regime}.generate_step_scores"] = scores
        results[regime] = _greedy_result(generated, scores, tau, tie_step if regime == "official" else None)
    model.set_precision(torch.float32)
    meta["generation"] = {"results": results}
    _write(folder, f"factory_c_{seed}", meta, tensors)


def _render(model, question: str) -> list[int]:
    from osprey.text.conversation import Turn, get_template
    from osprey.text.render import render_conversation
    from osprey.text.tokenizer import llama2_tokenizer

    n_regions = question.count("<mask><pos>")
    return render_conversation([Turn("user", question)], template=get_template("osprey_v1"),
                               tokenizer=llama2_tokenizer(), slots=model.slots, num_image_tokens=model.num_image_tokens,
                               num_regions=n_regions, add_generation_prompt=True, official_placeholders=True).input_ids


def _greedy_result(generated: list[int], scores: torch.Tensor, tau: float, tie_step: int | None) -> dict:
    top = scores.float().topk(5, dim=-1)
    ids, values = top.indices.tolist(), top.values.tolist()
    margins = [v[0] - v[1] for v in values]
    recorded = list(generated)
    if tie_step is not None:
        # Another run's logits: two other ids at the top, ours third, all within tau of the top-1.
        others = [i for i in range(100, 110) if i != generated[tie_step]][:4]
        top1 = values[tie_step][0]
        ids[tie_step] = [others[0], others[1], generated[tie_step], others[2], others[3]]
        values[tie_step] = [top1, top1 - tau / 2, top1 - tau / 2, top1 - 3 * tau, top1 - 4 * tau]
        margins[tie_step] = tau / 2
        recorded[tie_step] = others[0]
        recorded[tie_step + 1:] = [others[1]] * (len(recorded) - tie_step - 1)  # a different continuation
    return {"generated_ids": recorded, "step_top1_minus_top2": margins,
            "step_top5": [{"ids": i, "values": v} for i, v in zip(ids, values, strict=True)], "tau": tau}
