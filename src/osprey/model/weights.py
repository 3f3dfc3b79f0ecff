"""Checkpoints: the official Osprey layout, our own layout, and strict key accounting.

Our module tree is ``language_model`` (a stock transformers causal LM), ``vision_encoder.visual``
(open_clip's timm tower), ``projector`` and ``mask_extractor``. The official checkpoint names the same
tensors differently; ``OFFICIAL_PREFIXES`` is the one bijective table between the two. Loading
accounts for every key: a missing or unexpected key is an error naming it, except the keys in
``IGNORED_OFFICIAL_KEYS`` (ignored explicitly, by name).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from osprey.config import (
    LanguageModelConfig,
    MaskExtractorConfig,
    OspreyConfig,
    ProjectorConfig,
    VisionConfig,
)
from osprey.model import merged_cache
from osprey.model.generation import OFFICIAL_TEMPERATURE, sampling_values
from osprey.model.language_model import build_language_model, tokenizer_for
from osprey.model.osprey import OspreyModel
from osprey.text.tokenizer import save_tokenizer

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"  # peft LoRA adapters of the LLM (with adapter_config.json)
INDEX_NAME = "model.safetensors.index.json"
GENERATION_CONFIG = "generation_config.json"
SAMPLING_KEYS = ("temperature", "top_p", "top_k")
DEFAULT_NEW_TOKENS = 1024  # describe, chat, serve and the evals: the official 1024

# (our prefix, official prefix); the first match wins, so longer official prefixes come first.
OFFICIAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("vision_encoder.visual.", "model.vision_tower.vision_tower.visual."),
    ("projector.", "model.mm_projector."),
    ("mask_extractor.", "mask_extractor."),
    ("language_model.lm_head.", "lm_head."),
    ("language_model.model.", "model."),
)
# transformers 4.31 saved LLaMA's RoPE ``inv_freq`` as a persistent buffer; it is derived, not learnt.
IGNORED_OFFICIAL_KEYS = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")
# open_clip checkpoints hold the whole CLIP; only ``visual.*`` belongs to the image tower.
OPEN_CLIP_TEXT_KEYS = re.compile(
    r"^(transformer\.|token_embedding\.|positional_embedding$|ln_final\.|text_projection|logit_scale$|"
    r"logit_bias$|text\.)"
)


class CheckpointError(ValueError):
    """A checkpoint does not match the model: names every missing and unexpected key."""


def to_official_key(key: str) -> str:
    for ours, official in OFFICIAL_PREFIXES:
        if key.startswith(ours):
            return official + key[len(ours) :]
    raise KeyError(f"{key!r} has no official name (expected a prefix in {[p for p, _ in OFFICIAL_PREFIXES]})")


def from_official_key(key: str) -> str:
    for ours, official in OFFICIAL_PREFIXES:
        if key.startswith(official):
            return ours + key[len(official) :]
    raise KeyError(f"{key!r} is not an Osprey checkpoint key")


def official_state_dict_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Official name -> shape for every entry of ``model.state_dict()``."""
    return {to_official_key(k): tuple(v.shape) for k, v in model.state_dict().items()}


# -- reading files ------------------------------------------------------------------------------
def _read_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    # Pickled checkpoints are read without executing code.
    return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)


def checkpoint_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder: sharded (via an index) or single, safetensors first."""
    for index_name in (INDEX_NAME, "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.exists():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [folder / s for s in shards]
    for single in (WEIGHTS_NAME, "pytorch_model.bin"):
        if (folder / single).exists():
            return [folder / single]
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise FileNotFoundError(f"no model weights in {folder}; expected model.safetensors, pytorch_model.bin or an index; found {found}")


def iter_checkpoint(folder: Path) -> Iterator[tuple[str, torch.Tensor]]:
    for file in checkpoint_files(folder):
        yield from _read_tensor_file(file).items()


# -- configs ----------------------------------------------------------------------------------
def is_official_folder(folder: Path) -> bool:
    config = _read_json(folder / CONFIG_NAME)
    return "osprey_format" not in config and str(config.get("model_type", "")).startswith("osprey")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text())


LLAMA_FIELDS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "rope_scaling", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id",
    "attention_bias", "mlp_bias",
)


def config_from_official(official: Mapping[str, Any], tokenizer: str = "llama2") -> OspreyConfig:
    """Our config for an official ``config.json`` (LLaMA fields + Osprey's ``mm_*`` fields).

    The vision tower is not described in that file (only a path to CLIP weights): it is always
    ``convnext_large_d_320`` run at 512 px.
    """
    hf = {"model_type": "llama"}
    for key in LLAMA_FIELDS:
        if key in official and official[key] is not None:
            hf[key] = official[key]
    if hf.get("num_key_value_heads") is None:
        hf["num_key_value_heads"] = hf.get("num_attention_heads")
    return OspreyConfig(
        name=str(official.get("_name_or_path") or "osprey_official"),
        vision=VisionConfig(),
        mask_extractor=MaskExtractorConfig(),
        projector=ProjectorConfig(kind=official.get("mm_projector_type", "mlp2x_gelu")),
        language_model=LanguageModelConfig(source="config", hf_config=hf, tokenizer=tokenizer),
        template="osprey_v1",
    )


# -- building without allocating, then assigning ------------------------------------------------
def build_empty(config: OspreyConfig, keep_language_model: bool = False):
    """The model on the meta device (no memory), ready for ``load_state_dict(assign=True)``.

    With ``keep_language_model`` the LLM is loaded for real from its own source (e.g. the
    SmolLM2 package) and only the Osprey modules are empty.
    """
    language_model = build_language_model(config.language_model) if keep_language_model else None
    with torch.device("meta"):
        if language_model is None:
            return OspreyModel(config)
        return OspreyModel(config, language_model=language_model)


def _materialize_meta_buffers(model: torch.nn.Module) -> None:
    """Rebuild non-persistent buffers (e.g. RoPE ``inv_freq``) that a meta build left empty."""
    for name, module in model.named_modules():
        meta = [b for b, t in module.named_buffers(recurse=False) if t is not None and t.is_meta]
        if not meta:
            continue
        config = getattr(module, "config", None)
        if config is None:
            raise CheckpointError(f"buffers {meta} of {name or 'model'} are not in the checkpoint and cannot be rebuilt")
        fresh = type(module)(config=config)
        for buffer in meta:
            setattr(module, buffer, getattr(fresh, buffer))
        for attr, value in vars(fresh).items():
            if isinstance(value, torch.Tensor) and getattr(module, attr, None) is not None:
                current = getattr(module, attr)
                if isinstance(current, torch.Tensor) and current.is_meta:
                    setattr(module, attr, value)


def assign_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], dtype: torch.dtype | None,
                      allow_missing_prefix: str | None = None) -> None:
    """Strict load with exact key accounting; tensors are cast to ``dtype`` (if given) and assigned."""
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not (allow_missing_prefix and k.startswith(allow_missing_prefix)))
    unexpected = sorted(k for k in state if k not in expected)
    if missing or unexpected:
        raise CheckpointError(_describe_mismatch(missing, unexpected))
    wrong = [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
             for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError("shape mismatch: " + "; ".join(wrong[:20]))
    cast = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(cast, strict=allow_missing_prefix is None, assign=True)
    _materialize_meta_buffers(model)


def _describe_mismatch(missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {missing[:20]}{' ...' if len(missing) > 20 else ''}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {unexpected[:20]}{' ...' if len(unexpected) > 20 else ''}")
    return "checkpoint does not match the model: " + "; ".join(parts)


def official_to_ours(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official-layout state dict to ours, dropping only ``IGNORED_OFFICIAL_KEYS``."""
    ours: dict[str, torch.Tensor] = {}
    foreign = []
    for key, value in state.items():
        if IGNORED_OFFICIAL_KEYS.match(key):
            continue
        try:
            ours[from_official_key(key)] = value
        except KeyError:
            foreign.append(key)
    if foreign:
        raise CheckpointError(_describe_mismatch([], foreign))
    return ours


def open_clip_vision_state(path: Path) -> dict[str, torch.Tensor]:
    """The image-tower tensors of an open_clip checkpoint (``visual.*``), keyed as in our model."""
    state = _read_tensor_file(path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    vision, foreign = {}, []
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.startswith("visual."):
            vision["vision_encoder." + key] = value
        elif not OPEN_CLIP_TEXT_KEYS.match(key):
            foreign.append(key)
    if foreign:
        raise CheckpointError(f"{path} has keys that are neither CLIP image nor text tower: {foreign[:20]}")
    if not vision:
        raise CheckpointError(f"{path} holds no 'visual.*' keys; expected an open_clip CLIP checkpoint")
    return vision


def load_projector_weights(path: Path) -> dict[str, torch.Tensor]:
    """A stage-1 ``mm_projector.bin`` (keys ``model.mm_projector.{0,2}.*``), keyed as inside our
    projector; read as the official does (``k.split('mm_projector.')[1]``)."""
    state = _read_tensor_file(path)
    picked = {k.split("mm_projector.", 1)[1]: v for k, v in state.items() if "mm_projector." in k}
    if not picked:
        raise CheckpointError(f"{path} holds no 'mm_projector.*' keys; found {sorted(state)[:10]}")
    return picked


def load_official(folder: str | Path, *, dtype: torch.dtype | None = None, clip_weights: str | Path | None = None):
    """Load a released Osprey checkpoint folder unchanged (sharded .bin or safetensors).

    The vision tower comes from the checkpoint's own ``model.vision_tower.*`` tensors (LayerScale
    ``gamma`` included, which the official loader silently drops); ``clip_weights`` (an open_clip
    ``open_clip_pytorch_model.bin``) fills the tower when the checkpoint lacks it. Every other key
    must be present.
    """
    folder = Path(folder)
    tokenizer = str(folder) if (folder / "tokenizer.model").exists() else "llama2"
    config = config_from_official(_read_json(folder / CONFIG_NAME), tokenizer=tokenizer)
    state = official_to_ours(dict(iter_checkpoint(folder)))
    if clip_weights is not None:
        for key, value in open_clip_vision_state(Path(clip_weights)).items():
            state.setdefault(key, value)
    model = build_empty(config)
    assign_state_dict(model, state, dtype)
    model.freeze_vision()
    model.generation_defaults = read_generation_config(folder)  # (save_pretrained writes them again)
    return model


# -- our own layout -----------------------------------------------------------------------------
def save_pretrained(model, folder: str | Path, *, include_language_model: bool = True,
                    max_shard_bytes: int = 4 * 1024**3) -> Path:
    """Write ``config.json`` + safetensors (sharded past ``max_shard_bytes``), atomically.

    With ``include_language_model=False`` only the Osprey modules are written and the config keeps
    pointing at the LLM's own source (used for the bundled small model, whose LLM ships with pip).
    """
    folder = Path(folder)
    peft_llm = hasattr(model.language_model, "peft_config")
    if peft_llm and include_language_model:
        merged = copy.deepcopy(model)
        merged.language_model = merged.language_model.merge_and_unload()
        return save_pretrained(merged, folder, include_language_model=True, max_shard_bytes=max_shard_bytes)
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    config = model.config
    if peft_llm:  # LoRA adapters beside the Osprey modules; the base LLM comes from its own source
        from peft import get_peft_model_state_dict

        adapter = {k: v.detach().float().contiguous() for k, v in get_peft_model_state_dict(model.language_model).items()}
        save_file(adapter, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        model.language_model.peft_config["default"].save_pretrained(str(tmp))
    if include_language_model:
        if config.language_model.tokenizer == "model":  # the LLM's own tokenizer: it travels with it
            save_tokenizer(tokenizer_for(config.language_model, folder=getattr(model, "source_folder", None)), tmp)
        hf = model.language_model.config.to_dict()
        llm = LanguageModelConfig(source="config", hf_config=_portable_hf_config(hf),
                                  tokenizer=config.language_model.tokenizer)
        config = config.replace(language_model=llm)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if include_language_model or not k.startswith("language_model.")}
    state, tied = _untie(state)
    payload = {"osprey_format": FORMAT_VERSION, "includes_language_model": include_language_model, **config.to_dict()}
    if tied:
        payload[TIED_KEY] = tied
    (tmp / CONFIG_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True))
    (tmp / GENERATION_CONFIG).write_text(json.dumps(generation_config(model), indent=2, sort_keys=True))
    _write_shards(state, tmp, max_shard_bytes)
    if folder.exists():

        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


# -- generation_config.json ---------------------------------------------------------------------
def read_generation_config(folder: str | Path) -> dict[str, Any]:
    """The sampling values (temperature, top_p, top_k) of a checkpoint folder's
    ``generation_config.json`` (HF ``save_pretrained`` copies Vicuna's there; the official
    ``generate()`` inherits them; :func:`save_pretrained` writes ours); {} when the folder has none.
    Read by ``--sample`` (:func:`osprey.model.generation.sampling_values`)."""
    path = Path(folder) / GENERATION_CONFIG
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON {type(data).__name__}; expected an object")
    return {k: data[k] for k in SAMPLING_KEYS if data.get(k) is not None}


def generation_config(model) -> dict[str, Any]:
    """What :func:`save_pretrained` writes as ``generation_config.json``.

    Sampling values: those ``model`` was loaded with (``model.generation_defaults``, e.g. Vicuna's
    temperature 0.9 / top_p 0.6 from an official folder's file), as they were; a model loaded
    without any (a preset) gets the values our ``--sample`` uses for it (temperature 0.2, the
    official scripts'; transformers' top_p 1.0 and top_k 50). :func:`read_generation_config` reads
    them back unchanged, so sampling after save and load is what it was before. Also
    ``do_sample: false`` and ``max_new_tokens: 1024`` (our greedy default and the official length)
    and the LLM's special token ids, as in a transformers file.
    """
    loaded = {k: v for k, v in dict(getattr(model, "generation_defaults", {}) or {}).items() if k in SAMPLING_KEYS}
    values = loaded or sampling_values({}, temperature=OFFICIAL_TEMPERATURE)
    out: dict[str, Any] = {"do_sample": False, "max_new_tokens": DEFAULT_NEW_TOKENS, **values}
    llm = getattr(getattr(model, "language_model", None), "config", None)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(llm, key, None) is not None:
            out[key] = getattr(llm, key)
    return out


TIED_KEY = "tied_weights"  # config.json: {alias key: stored key} for tensors saved once


def _untie(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Keep one copy of tensors that share memory (tied input/output embeddings, e.g. SmolLM2):
    safetensors refuses to write aliases. Returns (state without the aliases, {alias: kept key})."""
    kept: dict[tuple, str] = {}
    tied: dict[str, str] = {}
    out: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        value = state[key]
        identity = (value.device, value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape),
                    tuple(value.stride()), value.dtype)
        if value.numel() and identity in kept:
            tied[key] = kept[identity]
            continue
        kept[identity] = key
        out[key] = value
    return out, tied


def _portable_hf_config(hf: dict[str, Any]) -> dict[str, Any]:
    drop = {"architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype", "id2label", "label2id"}
    return {k: v for k, v in hf.items() if k not in drop}


def _write_shards(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int) -> None:
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = state[key]
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    (folder / INDEX_NAME).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))


def load_ours(folder: str | Path, *, dtype: torch.dtype | None = None, merge_adapters: bool = True):
    """A folder we wrote. LoRA adapters saved beside it are merged into the LLM, or with
    ``merge_adapters=False`` kept as a peft model with those adapters (to train them further)."""
    folder = Path(folder)
    payload = _read_json(folder / CONFIG_NAME)
    if payload.get("osprey_format") != FORMAT_VERSION:
        raise CheckpointError(f"{folder} has osprey_format={payload.get('osprey_format')!r}; expected {FORMAT_VERSION}")
    includes_llm = bool(payload.pop("includes_language_model", True))
    payload.pop("osprey_format")
    tied = payload.pop(TIED_KEY, {})
    config = OspreyConfig.from_dict(payload)
    state = dict(iter_checkpoint(folder))
    for alias, key in tied.items():
        if key not in state:
            raise CheckpointError(f"{folder / CONFIG_NAME}: {TIED_KEY} names {key!r}, which no weight file holds")
        state[alias] = state[key]
    if dtype is None and not includes_llm:
        dtype = torch.float32  # match the LLM built from its own source (a bf16 bundle loads as fp32)
    model = build_empty(config, keep_language_model=not includes_llm)
    assign_state_dict(model, state, dtype, allow_missing_prefix=None if includes_llm else "language_model.")
    model.source_folder = folder  # (a tokenizer saved beside the weights is found from here)
    model.generation_defaults = read_generation_config(folder)  # (save_pretrained writes them again)
    if tied and hasattr(model.language_model, "tie_weights"):
        model.language_model.tie_weights()  # one Parameter again, as the LLM was built
    if (folder / ADAPTER_WEIGHTS).exists():
        _apply_adapters(model, folder, merge=merge_adapters)
    if dtype is not None:
        model.to(dtype)
    model.freeze_vision()
    return model


def _apply_adapters(model, folder: Path, *, merge: bool = True) -> None:
    """Apply the saved LoRA adapters to the LLM and merge them into its weights (plain inference);
    ``merge=False`` leaves the LLM wrapped as a peft model with the adapters loaded."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    key = None
    if merge and merged_cache.worth_caching(model.language_model):
        key = merged_cache.merged_key(model.language_model, folder / ADAPTER_WEIGHTS, folder / "adapter_config.json")
        if merged_cache.load_merged(model.language_model, key):
            model.language_model_modified = True
            return
    config = LoraConfig.from_pretrained(str(folder))
    wrapped = get_peft_model(model.language_model, config)
    adapter = load_file(str(folder / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(wrapped, adapter)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise CheckpointError(f"{folder / ADAPTER_WEIGHTS}: adapter keys not in the model: {unexpected[:5]}")
    if not merge:
        model.language_model = wrapped
        return
    model.language_model = wrapped.merge_and_unload()
    # The LLM now differs from its source: whoever saves this model must save the LLM too.
    model.language_model_modified = True
    if key is not None:
        merged_cache.store_merged(model.language_model, key)


def from_pretrained(path: str | Path, *, dtype: torch.dtype | None = None, clip_weights: str | Path | None = None,
                    merge_adapters: bool = True):
    """Load an Osprey model from an official release folder or a folder we wrote (``merge_adapters``:
    :func:`load_ours`; official folders carry no adapters)."""
    folder = Path(path)
    if not (folder / CONFIG_NAME).exists():
        raise FileNotFoundError(f"{folder} is not a model folder: no {CONFIG_NAME}")
    if is_official_folder(folder):
        return load_official(folder, dtype=dtype, clip_weights=clip_weights)
    return load_ours(folder, dtype=dtype, merge_adapters=merge_adapters)
