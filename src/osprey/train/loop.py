"""One training loop for every stage, single process or data-parallel through accelerate.

The run reads as its steps: build the model, set the stage's trainable modules (and print the table),
build the data, then loop over optimizer steps. Data order is a pure function of ``(seed, epoch)``
and the step number, so a resumed run reads exactly the batches the interrupted one would have.

Loss normalisation: each optimizer step averages the cross-entropy over *all* supervised tokens of
the global batch (every micro-batch of every process). Each micro-batch's mean loss is weighted by
its share of those tokens before ``backward``, so one process with batch 4 and two processes with
batch 2 (or one process with batch 2 and two accumulation steps) compute the same update up to
floating-point summation order (tests/train/test_distributed.py measures the difference).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from osprey.data.dataset import Batch, DataStats, LengthGroupedSampler, ModelTransform, RegionDataset, collate
from osprey.data.mixtures import Mixture, load_mixture, mixture_from_dict
from osprey.model.osprey import OspreyModel, RegionBatch
from osprey.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from osprey.train.config import TrainConfig
from osprey.train.stages import (
    apply_lora,
    format_parameter_table,
    get_stage,
    modules_to_train,
    parameter_table,
    set_trainable,
)


@dataclass
class RunSummary:
    stage: int
    steps: int
    first_loss: float
    final_loss: float  # mean of the last (up to) 10 logged steps
    tokens_per_s: float
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""
    final_model: str = ""

    def markdown(self) -> str:
        rows = [
            ("stage", self.stage), ("optimizer steps", self.steps), ("first loss", f"{self.first_loss:.4f}"),
            ("final loss (last 10)", f"{self.final_loss:.4f}"), ("tokens/s", f"{self.tokens_per_s:,.0f}"),
            ("wall time", f"{self.seconds:.1f} s"), ("examples used", self.data.get("examples", 0)),
            ("skipped (per reason)", self.data.get("skipped", {}) or "none"),
            ("samples truncated / turns dropped",
             f"{self.data.get('truncated_samples', 0)} / {self.data.get('dropped_turns', 0)}"),
            ("final model", self.final_model),
        ]
        return "\n".join(["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig) -> tuple[OspreyModel, Any]:
    """A fresh preset (seeded init; pretrained LLM where the preset names one) or a saved model,
    with ``cfg.region_text`` (when set) replacing the model's region text."""
    model, tokenizer = _build_model(cfg)
    if cfg.region_text is not None:
        model.config = model.config.replace(region_text=cfg.region_text)
    return model, tokenizer


def _build_model(cfg: TrainConfig) -> tuple[OspreyModel, Any]:
    from osprey.config import PRESETS, OspreyConfig, get_preset
    from osprey.model.language_model import tokenizer_for
    from osprey.model.loading import load_model, model_folder
    from osprey.model.osprey import build_model as build_osprey
    from osprey.model.weights import ADAPTER_WEIGHTS

    if cfg.continue_adapters and not (Path(model_folder(cfg.model)) / ADAPTER_WEIGHTS).exists():
        raise ValueError(f"continue_adapters=true, but {cfg.model} has no {ADAPTER_WEIGHTS} to continue")
    if not cfg.model_overrides:
        model, tokenizer, _ = load_model(cfg.model, seed=cfg.seed, for_inference=False,
                                         merge_adapters=not cfg.continue_adapters)
        return model, tokenizer
    if cfg.model not in PRESETS:
        raise ValueError(f"model_overrides apply to presets ({', '.join(PRESETS)}), not to {cfg.model!r}")
    data = get_preset(cfg.model).to_dict()
    for key, value in cfg.model_overrides.items():
        node = data
        *path, last = key.split(".")
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            raise ValueError(f"model_overrides key {key!r} is not a field of the {cfg.model!r} config")
        node[last] = value
    config = OspreyConfig.from_dict(data)
    torch.manual_seed(cfg.seed)
    return build_osprey(config), tokenizer_for(config.language_model)


def resolve_mixture(cfg: TrainConfig) -> Mixture:
    if isinstance(cfg.data, str):
        mixture = load_mixture(cfg.data)
    elif isinstance(cfg.data, (list, dict)):
        mixture = mixture_from_dict(cfg.data, name=f"stage{cfg.stage}")
    else:
        raise ValueError(f"data={cfg.data!r}; expected a mixture name, a file or a list of entries")
    return mixture.under(cfg.data_root)


def prepare_model(model: OspreyModel, cfg: TrainConfig) -> tuple[str, ...]:
    """Stage trainability, LoRA, frozen-module dtype, gradient checkpointing. Returns trained modules."""
    stage = get_stage(cfg.stage)
    lora = cfg.lora is not None
    trains = modules_to_train(stage, train_vision=cfg.train_vision, lora=lora)
    if cfg.frozen_dtype == "bfloat16":
        for name in ("vision_encoder", "projector", "language_model"):
            if name not in trains or (name == "language_model" and lora):
                getattr(model, name).to(torch.bfloat16)
    if lora and not cfg.continue_adapters:
        apply_lora(model, cfg.lora)
    set_trainable(model, trains, lora=lora)
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()  # trainable weights (incl. LoRA on a bf16 base) stay float32
    if cfg.gradient_checkpointing:
        model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return trains


def build_optimizer(model: OspreyModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.lr
        for key, value in cfg.lr_overrides.items():
            if name.startswith(key + ".") or f"{key}_" in name:
                lr = float(value)
        groups.setdefault(lr, []).append(p)
    if not groups:
        raise ValueError(f"stage {cfg.stage} leaves no trainable parameter")
    return torch.optim.AdamW(
        [{"params": ps, "lr": lr} for lr, ps in groups.items()], weight_decay=cfg.weight_decay
    )


def cosine_with_warmup(optimizer: torch.optim.Optimizer, total: int, warmup: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Trainer:
    """Runs one stage described by a :class:`TrainConfig`."""

    def __init__(self, cfg: TrainConfig, *, log=print) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg = cfg
        self.log = log
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),  # CPU processes join a gloo group (MULTI_CPU)
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]
        )
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.out = Path(cfg.output_dir)

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.model, self.tokenizer = build_model(cfg)
        self.trains = prepare_model(self.model, cfg)
        self.model.to(self.accelerator.device)  # one process too: accelerate's prepare() only runs for several
        if self.rank == 0:
            stage = get_stage(cfg.stage)
            self.log(f"stage {cfg.stage} ({stage.name}): training {', '.join(self.trains)}")
            self.log(format_parameter_table(parameter_table(self.model)))
        transform = ModelTransform.for_model(self.model, self.tokenizer, max_length=cfg.max_length)
        self.dataset = RegionDataset(resolve_mixture(cfg), transform, seed=cfg.seed, limit=cfg.limit)
        self.global_batch = cfg.batch_size * cfg.grad_accum * self.world
        if len(self.dataset) < self.global_batch:
            raise ValueError(
                f"{len(self.dataset)} records but a global batch needs {self.global_batch} "
                f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x {self.world} processes)"
            )
        lengths = [self.dataset.length_estimate(i) for i in range(len(self.dataset))]
        self.sampler = LengthGroupedSampler(
            lengths, self.global_batch, seed=cfg.seed, grouped=cfg.group_by_length
        )
        self.steps_per_epoch = len(self.dataset) // self.global_batch  # the tail joins later epochs' shuffles
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        self.optimizer = build_optimizer(self.model, cfg)
        warmup = int(cfg.warmup_ratio * self.total_steps)
        self.scheduler = cosine_with_warmup(self.optimizer, self.total_steps, warmup, cfg.min_lr_ratio)
        self.ddp_model = self.model
        if self.world > 1:  # DDP (or FSDP / DeepSpeed from the accelerate config) wraps model and optimizer
            self.ddp_model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.config_yaml = yaml.safe_dump({**cfg.to_dict(), "model_config": self.model.config.to_dict()},
                                          sort_keys=False)

    # -- data --------------------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[Batch | DataStats]:
        epoch, position = divmod(step, self.steps_per_epoch)
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        order = self._order_cache.get(epoch) or self._order_cache.setdefault(epoch, self.sampler.order())
        if len(self._order_cache) > 2:
            self._order_cache.pop(min(self._order_cache))
        chunk = order[position * self.global_batch : (position + 1) * self.global_batch]
        per_micro = self.cfg.batch_size * self.world
        batches = []
        for m in range(self.cfg.grad_accum):
            mine = chunk[m * per_micro + self.rank * self.cfg.batch_size :][: self.cfg.batch_size]
            batches.append(collate([self.dataset[i] for i in mine], pad_id=self.tokenizer.pad_id))
        return batches

    def _all_reduce(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        if self.world > 1:
            tensor = self.accelerator.reduce(tensor, reduction="sum")
        return tensor.tolist()

    # -- one optimizer step --------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        batches = self.micro_batches(step)
        counts = [b.num_supervised if isinstance(b, Batch) else 0 for b in batches]
        tokens = sum(b.num_tokens for b in batches if isinstance(b, Batch))
        total_supervised, total_tokens = self._all_reduce([float(sum(counts)), float(tokens)])
        if total_supervised == 0:
            raise RuntimeError(f"step {step}: no supervised token in the global batch (every example skipped?)")
        loss_sum = 0.0
        device = self.accelerator.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        for m, batch in enumerate(batches):
            last = m == len(batches) - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else self.ddp_model.no_sync()
            with sync:
                if isinstance(batch, Batch) and counts[m]:
                    with autocast:
                        out = self.ddp_model(
                            input_ids=batch.input_ids.to(device),
                            pixel_values=batch.pixel_values.to(device),
                            regions=RegionBatch([mk.to(device) for mk in batch.masks]),
                            attention_mask=batch.attention_mask.to(device),
                            labels=batch.labels.to(device),
                        )
                    weight = counts[m] / total_supervised
                    loss = out.loss.float() * (weight * self.world)  # DDP averages gradients over processes
                    loss_sum += float(out.loss.detach()) * counts[m]
                else:  # nothing to learn here; still join the gradient all-reduce
                    loss = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
                loss.backward()
            if isinstance(batch, Batch):
                self.data_stats.merge(batch.stats)
            elif isinstance(batch, DataStats):
                self.data_stats.merge(batch)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        (global_loss_sum,) = self._all_reduce([loss_sum])
        return {
            "loss": global_loss_sum / total_supervised,
            "grad_norm": grad_norm,
            "tokens": total_tokens,
            "supervised": total_supervised,
        }

    # -- the run -----------------------------------------------------------------------------------
    def run(self, resume: bool | str | Path = False) -> RunSummary:
        cfg = self.cfg
        self.setup()
        self._order_cache: dict[int, list[int]] = {}
        self.data_stats = DataStats()
        step = 0
        ckpt_root = self.out / "checkpoints"
        if resume:
            path = latest_checkpoint(ckpt_root) if resume is True else Path(resume)
            if path is None:
                self.log(f"--resume: no checkpoint under {ckpt_root}; starting from step 0")
            else:
                state = load_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler)
                step = int(state["step"])
                self.data_stats = DataStats()
                self.data_stats.merge_dict(state.get("data", {}))
                if self.rank == 0:
                    self.log(f"resumed from {path} at step {step}")
        metrics_path = self.out / "metrics.jsonl"
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(self.config_yaml, encoding="utf-8")
            _truncate_metrics(metrics_path, keep_through=step)
        self.model.train()
        if "vision_encoder" not in self.trains:
            self.model.vision_encoder.eval()
        bar = None
        if self.rank == 0 and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=step, desc=f"stage {cfg.stage}", unit="step")
        start = time.perf_counter()
        tokens_seen = 0
        losses: list[float] = []
        first_loss = math.nan
        while step < self.total_steps:
            t0 = time.perf_counter()
            metrics = self.train_step(step)
            step += 1
            dt = time.perf_counter() - t0
            tokens_seen += int(metrics["tokens"])
            losses.append(metrics["loss"])
            if math.isnan(first_loss):
                first_loss = metrics["loss"]
            record = {
                "stage": cfg.stage, "step": step, "epoch": round(step / self.steps_per_epoch, 4),
                "loss": round(metrics["loss"], 6), "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": round(metrics["grad_norm"], 6), "tokens": int(metrics["tokens"]),
                "tokens_per_s": round(metrics["tokens"] / dt, 1), "seconds": round(time.perf_counter() - start, 3),
            }
            if self.rank == 0:
                if step % cfg.log_every == 0 or step == self.total_steps:
                    with metrics_path.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                    bar.update(1)
            if step % cfg.save_every == 0 or step == self.total_steps:
                self.accelerator.wait_for_everyone()
                if self.rank == 0:
                    save_checkpoint(
                        ckpt_root, step, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                        state={"data": self.data_stats.to_dict(), "stage": cfg.stage},
                        config_yaml=self.config_yaml, keep=cfg.keep_checkpoints,
                    )
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        final_dir = ""
        if self.rank == 0:
            final_dir = str(self.save_final())
            plot_metrics([metrics_path], self.out / "loss.png")
        tail = losses[-10:]
        summary = RunSummary(
            stage=cfg.stage, steps=step, first_loss=first_loss,
            final_loss=float(np.mean(tail)) if tail else math.nan,
            tokens_per_s=tokens_seen / seconds if seconds > 0 else 0.0, seconds=seconds,
            data=self.data_stats.to_dict(), output_dir=str(self.out), final_model=final_dir,
        )
        if self.rank == 0:
            (self.out / "summary.json").write_text(json.dumps(summary.__dict__, indent=2), encoding="utf-8")
            self.log(summary.markdown())
        self.accelerator.wait_for_everyone()
        return summary

    def save_final(self) -> Path:
        """The trained model as a loadable folder (``final/``)."""
        from osprey.model.weights import save_pretrained

        llm_source = self.model.config.language_model.source
        llm_fully_trained = "language_model" in self.trains and self.cfg.lora is None
        # The LLM is saved when it cannot be rebuilt from its source: trained in full, random-init
        # (source "config"), or carrying adapters merged at load (fine-tuning an adapted model).
        merged_before = getattr(self.model, "language_model_modified", False)
        include_llm = llm_fully_trained or llm_source == "config" or merged_before
        return save_pretrained(self.model, self.out / "final", include_language_model=include_llm)


def _truncate_metrics(path: Path, keep_through: int) -> None:
    """Drop metric lines past ``keep_through`` (a killed run may have logged beyond its checkpoint)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= keep_through:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut by the kill
    path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(paths: list[Path], out: Path, labels: list[str] | None = None) -> Path:
    """Loss against step, one curve per metrics file (one per stage), as a PNG; ``labels`` name the
    curves (default "stage N" from the metrics)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    offset = 0
    for k, path in enumerate(paths):
        rows = read_metrics(path)
        if not rows:
            continue
        steps = [offset + r["step"] for r in rows]
        ax.plot(steps, [r["loss"] for r in rows], label=labels[k] if labels else f"stage {rows[0]['stage']}")
        offset = steps[-1]
    ax.set_xlabel("optimizer step (stages back to back)")
    ax.set_ylabel("loss (mean CE per supervised token)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
