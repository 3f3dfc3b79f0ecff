"""End-to-end training on the tiny preset: stages, LoRA, checkpoints, SIGKILL + resume, 2 processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import entries

from osprey.model.loading import load_model
from osprey.model.weights import from_pretrained
from osprey.train.checkpoint import latest_checkpoint, list_checkpoints
from osprey.train.config import LoraConfig, load_config
from osprey.train.loop import Trainer
from osprey.train.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]
STAGE_DATA = {1: ("llava",), 2: ("coco_instances",), 3: ("osprey_short_form", "osprey_part_level")}
EXPECTED = {1: {"projector"}, 2: {"mask_extractor"}, 3: {"projector", "mask_extractor", "language_model"}}


def _config(world: Path, out: Path, stage: int, **extra) -> dict:
    return {
        "stage": stage, "model": "tiny", "data": entries(*STAGE_DATA[stage]), "data_root": str(world),
        "output_dir": str(out), "max_steps": 3, "batch_size": 2, "lr": 1e-3, "save_every": 2,
        "progress": False, "seed": 1, **extra,
    }


def _changed_modules(before, after) -> set[str]:
    a, b = before.state_dict(), after.state_dict()
    return {k.split(".")[0] for k in a if not torch.equal(a[k].cpu(), b[k].cpu())}  # (trained on GPU if any)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_trains_exactly_its_modules(world, tmp_path, stage):
    cfg = load_config(None, base=_config(world, tmp_path / "run", stage))
    trainer = Trainer(cfg, log=lambda *_: None)
    summary = trainer.run()
    before, _, _ = load_model("tiny", seed=1)
    assert _changed_modules(before, trainer.model) == EXPECTED[stage]
    assert summary.steps == 3 and summary.data["examples"] == 6
    assert [p.name for p in list_checkpoints(tmp_path / "run/checkpoints")] == [
        "checkpoint-0000002", "checkpoint-0000003"]
    saved = from_pretrained(tmp_path / "run/final")
    assert _changed_modules(saved, trainer.model) == set()
    rows = read_metrics(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss"] > 0 for r in rows)
    assert (tmp_path / "run/loss.png").stat().st_size > 1000
    resolved = yaml.safe_load((tmp_path / "run/checkpoints/checkpoint-0000003/config.yaml").read_text())
    assert resolved["stage"] == stage and resolved["model_config"]["name"] == "tiny"


def test_stage3_lora_trains_adapters_only_and_saves_a_loadable_model(world, tmp_path):
    cfg = load_config(None, base=_config(world, tmp_path / "run", 3, lora={"r": 4, "alpha": 8}))
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    lm = trainer.model.cpu().language_model  # (trained on GPU if any)
    trained = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    before, _, _ = load_model("tiny", seed=1)
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p
            for n, p in lm.named_parameters() if "lora_" not in n}
    for name, p in before.language_model.named_parameters():
        assert torch.equal(base[name], p), name  # the base LLM is untouched
    saved = from_pretrained(tmp_path / "run/final")  # tiny's LLM has no other source: saved merged
    merged = lm.merge_and_unload() if hasattr(lm, "merge_and_unload") else lm
    ids = torch.tensor([[1, 5, 7, 9]])
    torch.testing.assert_close(saved.language_model(ids).logits, merged(ids).logits, atol=1e-5, rtol=1e-5)


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "osprey.train.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_sigkill_then_resume_reproduces_the_uninterrupted_loss_curve(world, tmp_path):
    base = _config(world, tmp_path / "x", 3, max_steps=8, save_every=2, keep_checkpoints=10)
    whole = _run_cli(["--config", str(_write(tmp_path / "whole.yaml", {**base, "output_dir": str(tmp_path / "whole")}))])
    assert whole.wait(timeout=300) == 0, whole.stdout.read()
    broken_cfg = _write(tmp_path / "broken.yaml", {**base, "output_dir": str(tmp_path / "broken")})
    victim = _run_cli(["--config", str(broken_cfg)])
    deadline = time.time() + 240
    while latest_checkpoint(tmp_path / "broken/checkpoints") is None or int(
        latest_checkpoint(tmp_path / "broken/checkpoints").name.split("-")[1]
    ) < 4:
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = int(latest_checkpoint(tmp_path / "broken/checkpoints").name.split("-")[1])
    assert killed_at < 8
    resumed = _run_cli(["--config", str(broken_cfg), "--resume"])
    log = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, log
    assert f"at step {killed_at}" in log
    expected = [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "whole/metrics.jsonl")]
    got = [(r["step"], r["loss"]) for r in read_metrics(tmp_path / "broken/metrics.jsonl")]
    assert got == expected  # identical to the last printed digit (CPU is deterministic here)


def test_two_processes_match_one_with_the_same_global_batch(world, tmp_path):
    """Data parallel correctness: 2 gloo processes x batch 2 == 1 process x batch 4 (loss within 1e-5)."""
    cfg = _config(world, tmp_path / "x", 3, max_steps=3, batch_size=4, lr=1e-3)
    single = _run_cli(["--config", str(_write(tmp_path / "one.yaml", {**cfg, "output_dir": str(tmp_path / "one")}))])
    assert single.wait(timeout=300) == 0, single.stdout.read()
    two_cfg = _write(tmp_path / "two.yaml", {**cfg, "output_dir": str(tmp_path / "two"), "batch_size": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         "-m", "osprey.train.cli", "--config", str(two_cfg)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert two.returncode == 0, two.stdout + two.stderr
    one_rows, two_rows = read_metrics(tmp_path / "one/metrics.jsonl"), read_metrics(tmp_path / "two/metrics.jsonl")
    assert [r["step"] for r in two_rows] == [1, 2, 3]  # rank 0 alone writes the log
    for a, b in zip(one_rows, two_rows):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and a["tokens"] == b["tokens"]


def test_config_errors_name_the_bad_value(tmp_path):
    with pytest.raises(ValueError, match="stage=4"):
        load_config(None, base={"stage": 4, "model": "tiny", "data": [], "output_dir": "x"})
    with pytest.raises(ValueError, match="lr='fast'"):
        load_config(None, ["lr=fast"], base={"stage": 1, "model": "tiny", "data": [], "output_dir": "x"})
    with pytest.raises(ValueError, match="unknown training keys"):
        load_config(None, ["learning_rate=1"], base={"stage": 1, "model": "tiny", "data": [], "output_dir": "x"})
    cfg = load_config(None, ["lr=1e-4", "lora.r=8"], base={"stage": 3, "model": "tiny", "data": [], "output_dir": "x"})
    assert cfg.lr == 1e-4 and cfg.lora == LoraConfig(r=8)


def test_lora_is_typed_and_an_unknown_lora_key_is_an_error_listing_the_valid_ones():
    base = {"stage": 3, "model": "tiny", "data": [], "output_dir": "x"}
    with pytest.raises(ValueError, match=r"unknown training keys \['lora.rank'\]; "
                                         r"expected some of \['alpha', 'dropout', 'r', 'target_modules'\]"):
        load_config(None, base={**base, "lora": {"rank": 8}})
    with pytest.raises(ValueError, match=r"lora.rank"):
        load_config(None, ["lora.rank=8"], base=base)
    assert load_config(None, base={**base, "lora": {}}).lora == LoraConfig()  # {}: the defaults
    assert LoraConfig() == LoraConfig(r=16, alpha=32, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    cfg = load_config(None, ["lora.alpha=8", "lora.dropout=5e-2", "lora.target_modules=[q_proj]"], base=base)
    assert cfg.lora == LoraConfig(alpha=8, dropout=0.05, target_modules=("q_proj",))
    assert isinstance(cfg.lora.dropout, float)  # "5e-2" is a string to YAML 1.1; coerced by the field's type
    assert cfg.to_dict()["lora"]["target_modules"] == ("q_proj",)
    with pytest.raises(ValueError, match=r"lora\.target_modules='q_proj'"):
        load_config(None, ["lora.target_modules=q_proj"], base=base)
    with pytest.raises(ValueError, match="lora=True; expected a mapping"):
        load_config(None, ["lora=true"], base=base)


def test_cli_help_and_bad_config(tmp_path):
    out = subprocess.run([sys.executable, "-m", "osprey.cli", "train", "--help"], capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0 and "key=value" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "osprey.cli", "train", "--config", str(tmp_path / "none.yaml")],
                         capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_stage3_continue_adapters_trains_the_saved_adapters_and_saves_adapters_only(world, tmp_path):
    """From the bundled osprey-small (SmolLM2 + LoRA adapters): one more stage-3 step trains those
    adapters in place; the result is again Osprey modules + adapters, the LLM left to its package."""
    from safetensors.torch import load_file

    from osprey.model.loading import BUNDLED, bundled_available
    from osprey.model.weights import ADAPTER_WEIGHTS

    if not bundled_available():
        pytest.skip("bundled model not installed")
    cfg = load_config(None, base={
        **_config(world, tmp_path / "run", 3, max_steps=1, batch_size=1, save_every=1, lr=1e-2),
        "model": str(BUNDLED), "lora": {"r": 16}, "continue_adapters": True, "frozen_dtype": "bfloat16",
    })  # fmt: skip
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    lm = trainer.model.cpu().language_model
    trained = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    final = tmp_path / "run/final"
    assert (final / ADAPTER_WEIGHTS).exists()
    assert sum(p.stat().st_size for p in final.glob("*.safetensors")) < 40e6  # no 135M-parameter LLM in it
    before, after = load_file(str(BUNDLED / ADAPTER_WEIGHTS)), load_file(str(final / ADAPTER_WEIGHTS))
    assert set(before) == set(after)
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in before)  # trained further
    loaded, _, _ = load_model(str(final), for_inference=False)  # loads back (adapters merged)
    assert not hasattr(loaded.language_model, "peft_config")


def test_continue_adapters_needs_lora_and_a_folder_with_adapters(world, tmp_path):
    with pytest.raises(ValueError, match="continue_adapters=true trains the model's saved LoRA adapters"):
        load_config(None, base={**_config(world, tmp_path / "a", 3), "continue_adapters": True})
    cfg = load_config(None, base={**_config(world, tmp_path / "b", 3), "lora": {"r": 4}, "continue_adapters": True,
                                  "model": str(tmp_path)})
    with pytest.raises(ValueError, match=r"has no adapter_model\.safetensors to continue"):
        Trainer(cfg, log=lambda *_: None).run()
