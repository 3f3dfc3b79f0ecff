"""Every training YAML shipped in configs/ loads into a valid TrainConfig (accelerate's own files
aside), so a renamed or mistyped key fails here rather than at the start of a long run."""

from __future__ import annotations

from pathlib import Path

import pytest

from osprey.train.config import LoraConfig, TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TRAINING_YAMLS = sorted(p for p in CONFIGS.rglob("*.yaml") if "accelerate" not in p.relative_to(CONFIGS).parts)


def test_there_are_training_configs():
    assert len(TRAINING_YAMLS) >= 7, TRAINING_YAMLS


@pytest.mark.parametrize("path", TRAINING_YAMLS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_config_loads(path: Path):
    cfg = load_config(path)
    assert isinstance(cfg, TrainConfig)
    assert cfg.lora is None or isinstance(cfg.lora, LoraConfig)


def test_the_train_help_names_only_files_that_exist():
    import argparse
    import re

    from osprey.train.cli import register

    parser = argparse.ArgumentParser(prog="osprey")
    register(parser.add_subparsers())
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    named = re.findall(r"configs/[\w/.-]+\.yaml", text)
    assert named and all((CONFIGS.parent / p).is_file() for p in named), named


OFFICIAL_7B = {  # scripts/stage2.sh, scripts/stage3.sh (osprey-official.md §4); zero2.json sets no clipping
    2: {"epochs": 2.0, "lr": 2e-5, "save_every": 10000},
    3: {"epochs": 2.0, "lr": 1e-5, "save_every": 2000},
}
COMMON_7B = {"batch_size": 1, "grad_accum": 1, "weight_decay": 0.0, "warmup_ratio": 0.03, "min_lr_ratio": 0.0,
             "bf16": True, "gradient_checkpointing": True, "group_by_length": False, "max_length": 2048,
             "truncate": False, "max_grad_norm": None, "loss_reduction": "sample", "template": "v1"}


@pytest.mark.parametrize("stage", [2, 3])
def test_the_7b_recipe_carries_the_official_hyperparameters(stage):
    cfg = load_config(CONFIGS / "osprey_7b" / f"stage{stage}.yaml")
    assert cfg.stage == stage
    for key, value in {**COMMON_7B, **OFFICIAL_7B[stage]}.items():
        assert getattr(cfg, key) == value, key
    if stage == 2:
        assert cfg.mask_extractor_init == "hf" and cfg.vision_weights and cfg.projector_weights
        assert cfg.model_overrides["language_model.source"] == "pretrained"


def test_the_7b_stage1_is_llava_pretraining_with_the_plain_template():
    cfg = load_config(CONFIGS / "osprey_7b" / "stage1.yaml")
    assert (cfg.stage, cfg.template, cfg.lr, cfg.epochs) == (1, "plain", 1e-3, 1.0)


def test_dry_run_prints_the_plan_and_loads_no_weights(capsys, monkeypatch):
    import osprey.model.loading
    import osprey.model.weights
    from osprey.cli import main

    def refuse(*_a, **_k):
        raise AssertionError("--dry-run loaded weights")

    for module, name in ((osprey.model.loading, "load_model"), (osprey.model.weights, "from_pretrained"),
                         (osprey.model.weights, "load_official")):
        monkeypatch.setattr(module, name, refuse)
    assert main(["train", "--config", str(CONFIGS / "osprey_7b" / "stage3.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for key in TrainConfig.__dataclass_fields__:
        assert f"| {key} |" in out, key
    assert "| lr | 1e-05 |" in out and "| language_model | yes |" in out and "| vision_encoder | no (frozen) |" in out
    assert "training template: v1" in out
