"""``osprey train --dry-run``: the resolved plan of a run, read from its config alone (no weights,
no data, no accelerate): every training key with its value, what trains, where each module starts."""

from __future__ import annotations

import json
from pathlib import Path

from osprey.train.config import TrainConfig
from osprey.train.stages import MODULES, get_stage, modules_to_train


def _model_source(cfg: TrainConfig) -> tuple[str, str]:
    """(what ``model`` is, the training template it resolves to) without loading anything."""
    from osprey.config import PRESETS, apply_overrides, get_preset

    if cfg.model in PRESETS:
        preset = get_preset(cfg.model)
        data = apply_overrides(preset.to_dict(), cfg.model_overrides, what="model_overrides") if cfg.model_overrides else None
        llm = (data or preset.to_dict())["language_model"]
        where = f"preset {cfg.model!r} (LLM: {llm['source']}{' ' + str(llm['path']) if llm.get('path') else ''})"
        template = "v1" if preset.name.startswith("osprey_7b") else preset.template
        return where, cfg.template or template
    folder = Path(cfg.model)
    config_file = folder / "config.json"
    if not config_file.is_file():
        return (f"folder {cfg.model} (not present here)",
                cfg.template or "at load: v1 for an official folder or a 7B model, else the model's own")
    payload = json.loads(config_file.read_text())
    official = "osprey_format" not in payload and str(payload.get("model_type", "")).startswith("osprey")
    kind = "official Osprey folder" if official else "folder written by osprey"
    own = payload.get("template", "osprey_v1")
    seven_b = official or str(payload.get("name", "")).startswith("osprey_7b")
    return f"{kind} {cfg.model}", cfg.template or ("v1" if seven_b else own)


def describe_plan(cfg: TrainConfig) -> str:
    stage = get_stage(cfg.stage)
    trains = modules_to_train(stage, train_vision=cfg.train_vision, lora=cfg.lora is not None)
    where, template = _model_source(cfg)
    starts = {
        "vision_encoder": cfg.vision_weights or "the model's own weights",
        "projector": cfg.projector_weights or "the model's own weights",
        "mask_extractor": "HF _init_weights: N(0, 0.02), zero bias" if cfg.mask_extractor_init == "hf"
        else "the model's own weights (a preset: PyTorch's default init)",
        "language_model": "the model's own weights" + (f" + LoRA r={cfg.lora.r}" if cfg.lora else ""),
    }
    lines = [f"# plan: stage {cfg.stage} ({stage.name}), model {where}", "",
             "| key | value |", "|---|---|"]
    for key, value in cfg.to_dict().items():
        lines.append(f"| {key} | {json.dumps(value) if not isinstance(value, str) else value} |")
    lines += ["", f"training template: {template}",
              f"loss: {cfg.loss_reduction} mean; gradient clipping: "
              + ("none" if cfg.max_grad_norm is None else f"max norm {cfg.max_grad_norm:g}"),
              f"sample order: {'length-grouped' if cfg.group_by_length else 'random (seeded permutation per epoch)'}",
              "", "| module | trains | starts from |", "|---|---|---|"]
    for name in MODULES:
        lines.append(f"| {name} | {'yes' if name in trains else 'no (frozen)'} | {starts[name]} |")
    lines += ["", "global batch = batch_size x grad_accum x processes (the launcher's --num_processes)",
              "dry run: no weights or data were loaded"]
    return "\n".join(lines)
