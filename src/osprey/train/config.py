"""Training configuration: one YAML file, ``key=value`` overrides, saved resolved beside checkpoints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from osprey.config import apply_overrides, coerce_numbers, from_dict
from osprey.text.geometry import check_region_text


@dataclass(frozen=True)
class LoraConfig:
    """peft LoRA adapters on the LLM (stage 3); the YAML keys are these field names."""

    r: int = 16  # adapter rank
    alpha: int = 32  # scaling numerator (peft's lora_alpha): updates are scaled by alpha / r
    dropout: float = 0.0  # dropout on the adapters' input (peft's lora_dropout)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # LLM Linear layers to adapt

    def __post_init__(self) -> None:
        coerce_numbers(self)
        if isinstance(self.target_modules, str) or not all(isinstance(m, str) for m in self.target_modules):
            raise ValueError(f"lora.target_modules={self.target_modules!r}; expected a list of module names")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if self.r < 1:
            raise ValueError(f"lora.r={self.r!r}; expected an integer >= 1")


@dataclass
class TrainConfig:
    """Everything a run needs; the YAML file's keys are these field names."""

    stage: int
    model: str  # a preset name (fresh model) or a checkpoint folder (e.g. the previous stage's final/)
    data: Any  # a mixture: built-in name, a file, or an inline list of entries
    output_dir: str
    model_overrides: dict[str, Any] = field(default_factory=dict)  # preset only: {"mask_extractor.shape_encoding": "official"}
    # Switch a loaded model's region text ("none" / "geometry", osprey.text.geometry) from this stage
    # on; None keeps the model's own. It changes only the prompt, never a weight, so it applies to
    # checkpoints as well as presets, and the saved model carries the new value.
    region_text: str | None = None
    data_root: str = "."  # relative mixture paths resolve against this
    seed: int = 0
    max_steps: int | None = None  # optimizer steps; default: epochs x batches per epoch
    epochs: float = 1.0
    batch_size: int = 4  # per process, per micro-step
    grad_accum: int = 1
    lr: float = 2e-5
    lr_overrides: dict[str, float] = field(default_factory=dict)  # module name -> lr (e.g. lora: 2e-4)
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    max_grad_norm: float | None = 1.0  # null: no clipping (the official 7B recipe: zero2.json sets none)
    # "token": the loss is the mean over every supervised token of the global batch (the small
    # recipe); "sample": the mean over each sample's supervised tokens, then over the samples of the
    # global batch (the official: HF Trainer, batch 1 per GPU, DDP averaging; docs/fidelity.md).
    loss_reduction: str = "token"
    bf16: bool = False  # bf16 autocast for the forward pass
    frozen_dtype: str = "float32"  # storage dtype of frozen modules ("bfloat16" halves their memory)
    gradient_checkpointing: bool = False
    sharding: str = "none"  # "fsdp": FSDP2 shards weights, gradients and optimizer state (osprey.train.distributed)
    group_by_length: bool = True
    max_length: int = 2048
    # Drop later turn pairs of samples longer than max_length (image slots included). false: never
    # truncate, as the official ``tokenizer_image_token`` (``model_max_length`` then bounds nothing).
    truncate: bool = True
    # The conversation template training renders with; null: ``v1`` ("curious user", as the official
    # trains) for the osprey_7b preset and official checkpoint folders, else the model's own template.
    # Evaluation and the demo always use the model's template (``osprey_v1`` for official models).
    template: str | None = None
    # Assembling the stage-2 start as the official does (a preset only; the LLM comes from
    # model_overrides {language_model.source: pretrained, language_model.path: <HF folder>}):
    vision_weights: str | None = None  # open_clip ``open_clip_pytorch_model.bin`` -> vision_encoder
    projector_weights: str | None = None  # stage-1 ``mm_projector.bin`` (official key names) -> projector
    # "torch": PyTorch's default init of the fresh mask extractor (the small recipe); "hf": HF's
    # ``_init_weights`` as the official stage 2 gets it (Linear weights N(0, 0.02), zero bias).
    mask_extractor_init: str = "torch"
    # "strict": records the official code would mis-render or that look corrupt are dropped and
    # counted; "lenient": repair what the official code trains on anyway (each repair counted).
    data_strictness: str = "strict"
    train_vision: bool = False  # also train the vision tower (presets without pretrained CLIP weights)
    lora: LoraConfig | None = None  # stage 3: LoRA adapters instead of the whole LLM ({} for the defaults)
    # Stage 3 from a folder that carries LoRA adapters: train those adapters further (their saved r,
    # alpha and targets; ``lora`` must be set) instead of merging them into the LLM and adding new
    # ones, so the result is again Osprey modules + adapters, not a whole LLM.
    continue_adapters: bool = False
    save_every: int = 500  # optimizer steps between checkpoints (and always at the end)
    keep_checkpoints: int = 2
    log_every: int = 1
    limit: int | None = None  # use only the first N records (smoke runs)
    progress: bool = True

    def __post_init__(self) -> None:
        coerce_numbers(self)  # YAML reads "1e-3" as a string (YAML 1.1 wants "1.0e-3")
        if self.lora is not None and not isinstance(self.lora, LoraConfig):
            raise ValueError(f"lora={self.lora!r}; expected a mapping of {[f.name for f in dataclasses.fields(LoraConfig)]}")
        self.lr_overrides = {k: float(v) for k, v in self.lr_overrides.items()}
        if self.stage not in (1, 2, 3):
            raise ValueError(f"stage={self.stage!r}; expected 1, 2 or 3")
        for name in ("batch_size", "grad_accum", "max_length", "save_every", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected an integer >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps!r}; expected >= 1 or null")
        if self.frozen_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"frozen_dtype={self.frozen_dtype!r}; expected 'float32' or 'bfloat16'")
        if self.sharding not in ("none", "fsdp"):
            raise ValueError(f"sharding={self.sharding!r}; expected 'none' (replicated: DDP) or 'fsdp'")
        if self.continue_adapters and self.lora is None:
            raise ValueError("continue_adapters=true trains the model's saved LoRA adapters; set lora too")
        if self.lora is not None and self.stage != 3:
            raise ValueError(f"lora is for stage 3 (the LLM trains there); this is stage {self.stage}")
        if self.region_text is not None:  # None: keep the model's own
            check_region_text(self.region_text)
        choices = {"loss_reduction": ("token", "sample"), "mask_extractor_init": ("torch", "hf"),
                   "data_strictness": ("strict", "lenient")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {', '.join(allowed)}")
        if self.template is not None:
            from osprey.text.conversation import get_template

            get_template(self.template)
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm!r}; expected > 0 or null (no clipping)")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio={self.warmup_ratio!r}; expected a value in [0, 1)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """An unknown key, at the top or nested (``lora.rank``), is an error that names it."""
        return from_dict(cls, data, what="training")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` -> ("a.b", value parsed as YAML: numbers, booleans, lists, null)."""
    if "=" not in text:
        raise ValueError(f"override {text!r}; expected key=value (e.g. lr=1e-4 or lora.r=8)")
    key, raw = text.split("=", 1)
    if not key:
        raise ValueError(f"override {text!r} has an empty key")
    return key, yaml.safe_load(raw) if raw else ""


def load_config(path: str | Path | None, overrides: list[str] = (), base: dict[str, Any] | None = None) -> TrainConfig:
    """YAML file (or ``base``) + ``key=value`` overrides -> a validated :class:`TrainConfig`.

    An override may add a key the file lacks (``lora.r=8``); :meth:`TrainConfig.from_dict` then
    rejects the ones that are no field."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {str(path)!r} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{str(path)!r} holds a YAML {type(loaded).__name__}; expected a mapping")
        data.update(loaded)
    apply_overrides(data, [parse_override(text) for text in overrides], create=True)
    return TrainConfig.from_dict(data)
