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
