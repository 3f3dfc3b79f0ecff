"""One training loop for every stage, single process or data-parallel through accelerate.

The run reads as its steps: build the model, set the stage's trainable modules (and print the table),
build the data, then loop over optimizer steps. Data order is a pure function of ``(seed, epoch)``
and the step number, so a resumed run reads exactly the batches the interrupted one would have.
What each step logs is :mod:`osprey.train.metrics`; the optimizer and schedule :mod:`osprey.train.optim`;
what a stage trains :mod:`osprey.train.stages`.

Loss normalisation (``loss_reduction``): ``token`` averages the cross-entropy over *all* supervised
tokens of the global batch (every micro-batch of every process): each micro-batch's mean loss is
weighted by its share of those tokens before ``backward``. ``sample`` (the official: batch 1 per GPU,
each sample's token mean, averaged over GPUs) runs one forward per sample and weights each sample's
token mean by 1 / (samples of the global batch with a supervised token). Either way one process
with batch 4 and two processes with batch 2 (or one process with batch 2 and two accumulation
steps) compute the same update up to floating-point summation order (tests/train/test_train.py).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from osprey.data.dataset import Batch, DataStats, LengthGroupedSampler, ModelTransform, RegionDataset, collate
from osprey.data.mixtures import Mixture, load_mixture, mixture_from_dict
from osprey.model.loading import load_model, model_folder
from osprey.model.osprey import OspreyModel, RegionBatch
from osprey.model.weights import ADAPTER_WEIGHTS
from osprey.text.tokenizer import TextTokenizer
from osprey.train.checkpoint import (
    gather_optimizer,
    gather_rng,
    gather_trainable,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from osprey.train.config import TrainConfig
from osprey.train.distributed import as_float, no_gradient_sync, raw_optimizer, shard_model, uses_fsdp
from osprey.train.metrics import MetricsLog, RunSummary
from osprey.train.optim import build_optimizer, cosine_with_warmup
from osprey.train.stages import apply_stage
from osprey.train.start import assemble_start, training_template

__all__ = ["RunSummary", "Trainer", "build_model", "resolve_mixture"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig) -> tuple[OspreyModel, TextTokenizer]:
    """A fresh preset (seeded init; pretrained LLM where the preset names one; ``model_overrides``
    applied first) or a saved model, with ``cfg.region_text`` (when set) replacing its region text."""
    if cfg.continue_adapters and not (Path(model_folder(cfg.model)) / ADAPTER_WEIGHTS).exists():
        raise ValueError(f"continue_adapters=true, but {cfg.model} has no {ADAPTER_WEIGHTS} to continue")
    model, tokenizer, is_preset = load_model(cfg.model, seed=cfg.seed, for_inference=False,
                                             merge_adapters=not cfg.continue_adapters, overrides=cfg.model_overrides)
    assemble_start(model, cfg, is_preset=is_preset)
    if cfg.region_text is not None:
        model.config = model.config.replace(region_text=cfg.region_text)
    return model, tokenizer


def resolve_mixture(cfg: TrainConfig) -> Mixture:
    if isinstance(cfg.data, str):
        mixture = load_mixture(cfg.data)
    elif isinstance(cfg.data, (list, dict)):
        mixture = mixture_from_dict(cfg.data, name=f"stage{cfg.stage}")
    else:
        raise ValueError(f"data={cfg.data!r}; expected a mixture name, a file or a list of entries")
    return mixture.under(cfg.data_root)


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
        self.fsdp = uses_fsdp(cfg.sharding, self.accelerator)  # FSDP2 (osprey.train.distributed), else DDP
        self.out = Path(cfg.output_dir)

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        self.model, self.tokenizer = build_model(cfg)
        self.trains = apply_stage(self.model, cfg, log=self.log if self.rank == 0 else lambda *_: None)
        self.model.to(self.accelerator.device)  # one process too: accelerate's prepare() only runs for several
        transform = ModelTransform.for_model(self.model, self.tokenizer, max_length=cfg.max_length,
                                             template=training_template(cfg, self.model), truncate=cfg.truncate)
        self.dataset = RegionDataset(resolve_mixture(cfg), transform, seed=cfg.seed, limit=cfg.limit,
                                     lenient=cfg.data_strictness == "lenient")
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
        self._order_cache: dict[int, list[int]] = {}  # epoch -> sample order (the last two epochs)
        self.data_stats = DataStats()
        self.steps_per_epoch = len(self.dataset) // self.global_batch  # the tail joins later epochs' shuffles
        self.total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * self.steps_per_epoch))
        if self.fsdp:  # before the optimizer: fully_shard swaps in sharded parameters
            shard_model(self.model, self.accelerator.device)
        self.optimizer = build_optimizer(self.model, cfg)
        warmup = int(cfg.warmup_ratio * self.total_steps)
        self.scheduler = cosine_with_warmup(self.optimizer, self.total_steps, warmup, cfg.min_lr_ratio)
        self.ddp_model = self.model
        if self.world > 1 and not self.fsdp:  # DDP (or DeepSpeed from the accelerate config) wraps both
            self.ddp_model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.config_yaml = yaml.safe_dump({**cfg.to_dict(), "model_config": self.model.config.to_dict()},
                                          sort_keys=False)

    # -- data --------------------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[Batch]:
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
            items = [self.dataset[i] for i in mine]
            if self.cfg.loss_reduction == "sample":  # one forward per sample: its own token mean
                batches += [collate([item], pad_id=self.tokenizer.pad_id) for item in items]
            else:
                batches.append(collate(items, pad_id=self.tokenizer.pad_id))
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
        counts = [b.num_supervised for b in batches]
        tokens = sum(b.num_tokens for b in batches)
        samples = sum(1 for c in counts if c)  # (sample mode: one sample per batch)
        total_supervised, total_tokens, total_samples = self._all_reduce(
            [float(sum(counts)), float(tokens), float(samples)])
        by_sample = cfg.loss_reduction == "sample"
        if total_supervised == 0:
            raise RuntimeError(f"step {step}: no supervised token in the global batch (every example skipped?)")
        loss_sum = 0.0
        device = self.accelerator.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
        for m, batch in enumerate(batches):
            last = m == len(batches) - 1
            sync = contextlib.nullcontext() if last or self.world == 1 else no_gradient_sync(self.ddp_model)
            with sync:
                if counts[m]:
                    with autocast:
                        out = self.ddp_model(**batch.to(device, regions=RegionBatch))
                    weight = 1 / total_samples if by_sample else counts[m] / total_supervised
                    loss = out.loss.float() * (weight * self.world)  # DDP averages gradients over processes
                    loss_sum += float(out.loss.detach()) * (1 if by_sample else counts[m])
                else:  # nothing to learn here (an empty batch: every example skipped); still join the all-reduce
                    loss = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
                loss.backward()
            self.data_stats.merge(batch.stats)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        clip = math.inf if cfg.max_grad_norm is None else cfg.max_grad_norm  # inf: measured, not clipped
        grad_norm = as_float(torch.nn.utils.clip_grad_norm_(trainable, clip))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        (global_loss_sum,) = self._all_reduce([loss_sum])
        return {
            "loss": global_loss_sum / (total_samples if by_sample else total_supervised),
            "grad_norm": grad_norm,
            "tokens": total_tokens,
            "supervised": total_supervised,
        }

    # -- the run -----------------------------------------------------------------------------------
    def run(self, resume: bool | str | Path = False) -> RunSummary:
        cfg = self.cfg
        self.setup()
        step = self.resume(resume) if resume else 0
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(self.config_yaml, encoding="utf-8")
        self.model.train()
        if "vision_encoder" not in self.trains:
            self.model.vision_encoder.eval()
        metrics = MetricsLog(self.out, stage=cfg.stage, first_step=step, total_steps=self.total_steps,
                             steps_per_epoch=self.steps_per_epoch, log_every=cfg.log_every,
                             writer=self.rank == 0, progress=cfg.progress)
        while step < self.total_steps:
            started = time.perf_counter()
            result = self.train_step(step)
            step += 1
            metrics.record(step, result, lr=self.scheduler.get_last_lr()[0],
                           step_seconds=time.perf_counter() - started)
            if step % cfg.save_every == 0 or step == self.total_steps:
                self.save_checkpoint(step)
        metrics.stop()
        final_model = self.save_final()
        summary = metrics.summarise(data=self.data_stats.to_dict(), final_model=final_model)
        if self.rank == 0:
            self.log(summary.markdown())
        self.accelerator.wait_for_everyone()
        return summary

    def resume(self, resume: bool | str | Path) -> int:
        """Load the newest checkpoint under ``output_dir`` (``resume=True``) or the one named; the
        step to continue from (0 when there is none yet)."""
        root = self.out / "checkpoints"
        path = latest_checkpoint(root) if resume is True else Path(resume)
        if path is None:
            self.log(f"--resume: no checkpoint under {root}; starting from step 0")
            return 0
        state = load_checkpoint(path, model=self.model, optimizer=raw_optimizer(self.optimizer),
                                scheduler=self.scheduler, rank=self.rank)
        step = int(state["step"])
        self.data_stats = DataStats()
        self.data_stats.merge_dict(state.get("data", {}))
        if self.rank == 0:
            self.log(f"resumed from {path} at step {step}")
        return step

    def save_checkpoint(self, step: int) -> None:
        """Every process gathers its part of the state (the state-dict API: the full tensors of a
        sharded model); rank 0 writes ``checkpoints/checkpoint-<step>``."""
        self.accelerator.wait_for_everyone()
        weights = gather_trainable(self.model)
        optimizer_state = gather_optimizer(self.model, raw_optimizer(self.optimizer))
        rng = gather_rng()
        if self.rank == 0:
            save_checkpoint(
                self.out / "checkpoints", step, weights=weights, optimizer_state=optimizer_state,
                scheduler=self.scheduler, rng=rng, state={"data": self.data_stats.to_dict(), "stage": self.cfg.stage},
                config_yaml=self.config_yaml, keep=self.cfg.keep_checkpoints,
            )

    def save_final(self) -> str:
        """The trained model as a loadable folder (``final/``); its path on rank 0, "" elsewhere.
        A sharded model is gathered (every process) into an unsharded copy that rank 0 writes."""
        from osprey.model.weights import save_pretrained

        model = self.model
        if self.fsdp:
            model = self._gathered_copy()
        if self.rank != 0:
            return ""

        llm_source = self.model.config.language_model.source
        llm_fully_trained = "language_model" in self.trains and self.cfg.lora is None
        # The LLM is saved when it cannot be rebuilt from its source: trained in full, random-init
        # (source "config"), or carrying adapters merged at load (fine-tuning an adapted model).
        merged_before = getattr(self.model, "language_model_modified", False)
        include_llm = llm_fully_trained or llm_source == "config" or merged_before
        return str(save_pretrained(model, self.out / "final", include_language_model=include_llm))

    def _gathered_copy(self) -> OspreyModel | None:
        """Rank 0: the model rebuilt unsharded (same stage set-up) holding the gathered full state;
        other ranks: None. A collective: every process calls it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank != 0:
            return None
        copy, _ = build_model(self.cfg)
        apply_stage(copy, self.cfg, log=lambda *_: None)
        copy.load_state_dict(full, strict=True)
        copy.language_model_modified = getattr(self.model, "language_model_modified", False)
        return copy
