"""The official recipe's mechanics at tiny size: per-sample loss reduction (and its data-parallel /
accumulation equivalence), the training template rule, and the stage-2 start assembled from files
in their official formats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from train_helpers import entries

from osprey.config import get_preset
from osprey.model.language_model import build_language_model
from osprey.model.osprey import RegionBatch
from osprey.train.config import TrainConfig, load_config
from osprey.train.loop import Trainer, build_model
from osprey.train.metrics import read_metrics
from osprey.train.start import training_template

REPO = Path(__file__).resolve().parents[2]


def _cfg(world: Path, out: Path, **extra) -> dict:
    return {"stage": 3, "model": "tiny", "data": entries("osprey_short_form", "osprey_part_level"),
            "data_root": str(world), "output_dir": str(out), "max_steps": 2, "batch_size": 4, "lr": 1e-3,
            "save_every": 100, "progress": False, "seed": 1, "loss_reduction": "sample", **extra}


def test_sample_loss_is_the_mean_of_each_samples_token_mean(world, tmp_path):
    trainer = Trainer(TrainConfig.from_dict(_cfg(world, tmp_path / "s")), log=lambda *_: None)
    trainer.setup()
    batches = trainer.micro_batches(0)
    assert len(batches) == 4 and all(b.input_ids.shape[0] == 1 for b in batches)  # one forward per sample
    with torch.no_grad():
        per_sample = [float(trainer.model(**b.to("cpu", regions=RegionBatch)).loss) for b in batches]
        token_mean = (sum(p * b.num_supervised for p, b in zip(per_sample, batches, strict=True))
                      / sum(b.num_supervised for b in batches))
    loss = trainer.train_step(0)["loss"]
    assert loss == pytest.approx(sum(per_sample) / 4, rel=1e-6)
    assert abs(loss - token_mean) > 1e-4  # the two reductions weigh the samples differently here


def test_sample_reduction_two_processes_and_accumulation_match_one_big_batch(world, tmp_path):
    runs = {"one": {"batch_size": 4}, "accum": {"batch_size": 2, "grad_accum": 2}}
    for name, extra in runs.items():
        Trainer(TrainConfig.from_dict(_cfg(world, tmp_path / name, **extra)), log=lambda *_: None).run()
    two_cfg = tmp_path / "two.yaml"
    two_cfg.write_text(yaml.safe_dump(_cfg(world, tmp_path / "two", batch_size=2)))
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
         "-m", "osprey.train.cli", "--config", str(two_cfg)],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    rows = {name: read_metrics(tmp_path / name / "metrics.jsonl") for name in ("one", "accum", "two")}
    assert [r["step"] for r in rows["two"]] == [1, 2]
    for a, b, c in zip(rows["one"], rows["accum"], rows["two"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["loss"] - c["loss"]) < 1e-5
        assert a["tokens"] == b["tokens"] == c["tokens"]


def test_the_7b_preset_and_official_folders_train_with_v1_and_others_keep_their_template(tmp_path):
    cfg = TrainConfig.from_dict({"stage": 3, "model": "osprey_7b", "data": "stage3", "output_dir": "x"})
    seven = SimpleNamespace(config=get_preset("osprey_7b_1layer"))
    assert training_template(cfg, seven) == "v1"
    assert seven.config.template == "osprey_v1"  # evaluation and the demo keep it
    for preset in ("tiny", "small"):
        model = SimpleNamespace(config=get_preset(preset))
        assert training_template(TrainConfig.from_dict({**cfg.to_dict(), "model": preset}), model) == model.config.template
    official = tmp_path / "Osprey-7b"
    official.mkdir()
    (official / "config.json").write_text('{"model_type": "osprey", "_name_or_path": "whatever"}')
    tiny_named = SimpleNamespace(config=get_preset("tiny"))
    assert training_template(TrainConfig.from_dict({**cfg.to_dict(), "model": str(official)}), tiny_named) == "v1"
    assert training_template(TrainConfig.from_dict({**cfg.to_dict(), "template": "osprey_v1"}), seven) == "osprey_v1"


def test_the_stage2_start_assembles_each_official_file_into_its_module(tmp_path):
    """Tiny sizes, official formats: an HF LLaMA folder, an open_clip bin (with its text tower), a
    stage-1 mm_projector.bin; the mask extractor starts as HF's _init_weights."""
    torch.manual_seed(123)
    tiny = get_preset("tiny")
    llm = build_language_model(tiny.language_model)
    llm.save_pretrained(tmp_path / "vicuna")
    reference = build_model_reference(seed=7)
    clip = {k.removeprefix("vision_encoder."): v.clone() for k, v in reference.state_dict().items()
            if k.startswith("vision_encoder.")}
    clip.update({"token_embedding.weight": torch.randn(10, 4), "logit_scale": torch.tensor(4.6),
                 "transformer.resblocks.0.attn.in_proj_weight": torch.randn(12, 4)})
    torch.save(clip, tmp_path / "open_clip_pytorch_model.bin")
    projector = {f"model.mm_projector.{k}": v.clone() for k, v in reference.projector.state_dict().items()}
    torch.save(projector, tmp_path / "mm_projector.bin")
    cfg = load_config(None, base={
        "stage": 2, "model": "tiny", "data": "stage2", "output_dir": str(tmp_path / "out"),
        "model_overrides": {"language_model.source": "pretrained", "language_model.path": str(tmp_path / "vicuna")},
        "vision_weights": str(tmp_path / "open_clip_pytorch_model.bin"),
        "projector_weights": str(tmp_path / "mm_projector.bin"), "mask_extractor_init": "hf"})
    model, _ = build_model(cfg)
    for key, value in llm.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[key], value), key
    for key, value in model.vision_encoder.state_dict().items():
        assert torch.equal(value, clip[key]), key
    for key, value in model.projector.state_dict().items():
        assert torch.equal(value, projector[f"model.mm_projector.{key}"]), key
    linears = [m for m in model.mask_extractor.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(float(m.bias.detach().abs().max()) == 0.0 for m in linears if m.bias is not None)
    weights = torch.cat([m.weight.detach().flatten() for m in linears])
    assert abs(float(weights.std()) - 0.02) < 0.002 and abs(float(weights.mean())) < 0.002


def build_model_reference(seed: int):
    from osprey.model.osprey import build_model as build

    torch.manual_seed(seed)
    return build(get_preset("tiny"))


def test_assembly_keys_refuse_a_saved_model(tmp_path):
    from osprey.train.start import assemble_start

    cfg = TrainConfig.from_dict({"stage": 2, "model": "x", "data": "stage2", "output_dir": "o",
                                 "projector_weights": "mm_projector.bin"})
    with pytest.raises(ValueError, match="assemble a fresh preset"):
        assemble_start(SimpleNamespace(), cfg, is_preset=False)
