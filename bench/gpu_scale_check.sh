#!/usr/bin/env bash
# The prepared GPU check for sharded training and quantized inference (issue 21), in one device call.
#
#   bash bench/gpu_scale_check.sh            # OUT=... for the logs (default gpu_check_out)
#
# Carry torchao beside the other wheels first (`pip download --no-deps torchao==0.18.0 -d .whl`);
# the GPU image's Python has CUDA torch, accelerate and peft (bench/gpu_env.sh). Steps (each keeps
# going when another fails; about 6-8 minutes on an H200, most of it building osprey_7b on the CPU):
#   1. fsdp_roundtrip: FSDP2 (`sharding: fsdp`) with ONE rank on CUDA (two ranks need two GPUs):
#      stage 3 full fine-tune and LoRA on the tiny preset, 4 steps, against the unsharded loop on the
#      same GPU (losses within 1e-4: CUDA kernels are not bit-reproducible); then the FSDP run cut
#      back to its step-2 checkpoint and resumed to step 4 equals the uninterrupted one; final/ loads
#      with from_pretrained. DeepSpeed is not run: the loop refuses it (docs/training.md says why).
#   1b. fsdp_leaf_units: the same model sharded with every Linear/Conv2d/Embedding its own FSDP unit
#      (`shard_model(..., min_leaf_bytes=0)`, nested in the decoder-layer units, LoRA's base_layer
#      inside its LoRA layer) on CUDA: one forward + backward against the unsharded model (loss and
#      trainable gradients within 1e-4); the default 4 MiB threshold leaves the tiny preset's
#      projections inside their layers, so step 1 alone does not reach the nested units.
#   2. quantize_7b: bench/quantize.py on osprey_7b at full size (random weights) in bfloat16 on CUDA:
#      float / int8 / int4 weight memory, CUDA peak memory, load time, tokens/s.
#   2b. cpu_int8: bench/quantize.py on osprey_7b_1layer on the device machine's CPUs: float32 vs int8
#      (CpuInt8Linear: torch's _weight_int8pack_mm, bfloat16 activations when decoding) vs
#      int8-torchao (torchao's own CPU Linear): decode ms/token on a second, quieter CPU.
#   3. train_memory_full: bench/train_memory.py --full-finetune on the device machine's CPUs (16 cores,
#      128 GiB: two DDP processes of the 7B-shaped full fine-tune need ~20 GiB, more than the
#      development machine has); CPU only, no GPU needed.
# STEPS="fsdp quantize cpu_int8 memory" (default) picks steps, e.g. STEPS=memory for a second call.
set -u
STEPS=${STEPS:-fsdp quantize cpu_int8 memory}
source "$(dirname "$0")/gpu_env.sh"
PY=${PY:-python3}
command -v nvidia-smi >/dev/null && nvidia-smi -L
step versions "$PY" -c "
import osprey, torch, accelerate, peft
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))
print('accelerate', accelerate.__version__, 'peft', peft.__version__)
import torchao; print('torchao', torchao.__version__)
"
case " $STEPS " in *" fsdp "*) ;; *) SKIP_FSDP=1 ;; esac
[ -n "${SKIP_FSDP:-}" ] || step fsdp_roundtrip timeout 300 "$PY" - <<'PYEOF'
import shutil, sys, tempfile, time
from pathlib import Path
import torch
import osprey  # noqa: F401
sys.path.insert(0, "tests/train")
from train_helpers import entries
from osprey.model.weights import from_pretrained
from osprey.synthetic import WorldConfig
from osprey.synthetic.writer import train_seeds, write_split
from osprey.train.config import load_config
from osprey.train.loop import Trainer
from osprey.train.metrics import read_metrics

tmp = Path(tempfile.mkdtemp())
write_split(tmp / "world", train_seeds(12), WorldConfig(image_size=64, min_objects=2, max_objects=4))
failed = []

def run(name, resume=False, **extra):
    cfg = load_config(None, base={"stage": 3, "model": "tiny", "data": entries("osprey_short_form", "osprey_part_level"),
        "data_root": str(tmp / "world"), "output_dir": str(tmp / name), "max_steps": 4, "batch_size": 4, "lr": 1e-3,
        "save_every": 2, "keep_checkpoints": 10, "progress": False, "seed": 1, **extra})
    t = Trainer(cfg, log=lambda *_: None)
    started = time.perf_counter()
    t.run(resume=resume)
    print(f"{name}: device {t.accelerator.device}, fsdp {t.fsdp}, {time.perf_counter() - started:.1f} s")
    return [r["loss"] for r in read_metrics(tmp / name / "metrics.jsonl")]

def same(a, b, what, tol):
    ma, mb = from_pretrained(tmp / a / "final").state_dict(), from_pretrained(tmp / b / "final").state_dict()
    diff = max(float((ma[k].float() - mb[k].float()).abs().max()) for k in ma)
    ok = ma.keys() == mb.keys() and diff <= tol
    print(f"{what}: final/ max |diff| {diff:.2e} -> {'OK' if ok else 'FAIL'}")
    if not ok:
        failed.append(what)

for label, extra in (("full", {}), ("lora", {"lora": {"r": 4, "alpha": 8}, "frozen_dtype": "bfloat16"})):
    plain = run(f"{label}_plain", **extra)
    fsdp = run(f"{label}_fsdp", sharding="fsdp", **extra)
    worst = max(abs(a - b) for a, b in zip(plain, fsdp))
    print(f"{label}: losses plain {plain} fsdp {fsdp}: max |diff| {worst:.2e}")
    if worst > 1e-4:
        failed.append(f"{label} losses")
    same(f"{label}_plain", f"{label}_fsdp", f"{label} fsdp vs plain", 1e-3)
    shutil.copytree(tmp / f"{label}_fsdp", tmp / f"{label}_cut")  # as if killed after checkpoint 2
    shutil.rmtree(tmp / f"{label}_cut" / "final")
    shutil.rmtree(tmp / f"{label}_cut" / "checkpoints" / "checkpoint-0000004")
    resumed = run(f"{label}_cut", resume=True, sharding="fsdp", **extra)
    print(f"{label}: resumed losses {resumed}")
    if max(abs(a - b) for a, b in zip(resumed, fsdp)) > 1e-4:
        failed.append(f"{label} resume")
    same(f"{label}_fsdp", f"{label}_cut", f"{label} fsdp resumed vs uninterrupted", 1e-4)
print("FSDP single-rank round trip:", "FAILED " + ", ".join(failed) if failed else "all OK")
sys.exit(1 if failed else 0)
PYEOF
[ -n "${SKIP_FSDP:-}" ] || step fsdp_leaf_units timeout 240 "$PY" - <<'PYEOF'
import sys, tempfile
from pathlib import Path
import torch
import osprey  # noqa: F401
sys.path.insert(0, "tests/train")
from train_helpers import entries
from osprey.model.osprey import RegionBatch
from osprey.synthetic import WorldConfig
from osprey.synthetic.writer import train_seeds, write_split
from osprey.train.config import load_config
from osprey.train.distributed import shard_model, shard_units
from osprey.train.loop import Trainer, build_model, seed_everything
from osprey.train.stages import apply_stage

tmp = Path(tempfile.mkdtemp())
write_split(tmp / "world", train_seeds(8), WorldConfig(image_size=64, min_objects=2, max_objects=4))
cfg = load_config(None, base={"stage": 3, "model": "tiny", "data": entries("osprey_short_form"), "data_root": str(tmp / "world"),
    "output_dir": str(tmp / "x"), "max_steps": 1, "batch_size": 4, "progress": False, "seed": 1, "lora": {"r": 4, "alpha": 8}})
plain = Trainer(cfg, log=lambda *_: None)
plain.setup()
device = plain.accelerator.device
seed_everything(cfg.seed)
sharded, _ = build_model(cfg)
apply_stage(sharded, cfg, log=lambda *_: None)
sharded.to(device)
units = len(shard_units(sharded, min_leaf_bytes=0))
shard_model(sharded, device, min_leaf_bytes=0)
batch = plain.micro_batches(0)[0].to(device, regions=RegionBatch)
losses = []
for model in (plain.model, sharded):
    model.train(); model.vision_encoder.eval()
    loss = model(**batch).loss
    loss.backward()
    losses.append(float(loss.detach()))
grads = {n: p.grad for n, p in plain.model.named_parameters() if p.requires_grad}
worst = max(float((p.grad.full_tensor() - grads[n]).abs().max()) for n, p in sharded.named_parameters() if p.requires_grad)
ok = abs(losses[0] - losses[1]) <= 1e-4 and worst <= 1e-4
print(f"device {device}, {units} units: losses {losses}, max |grad diff| {worst:.2e} -> {'OK' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PYEOF
case " $STEPS " in *" cpu_int8 "*)
    CUDA_VISIBLE_DEVICES="" step cpu_int8 timeout 420 "$PY" bench/quantize.py --presets osprey_7b_1layer --device cpu \
        --modes int8 int8-torchao --no-bundled --new-tokens 16 ;;
esac
case " $STEPS " in *" quantize "*)
    step quantize_7b timeout 420 "$PY" bench/quantize.py --presets osprey_7b --device cuda --dtype bfloat16 \
        --modes int8 int4 --no-bundled --new-tokens 32 ;;
esac
case " $STEPS " in *" memory "*)
    CUDA_VISIBLE_DEVICES="" step train_memory_full timeout 420 "$PY" bench/train_memory.py --full-finetune ;;
esac
