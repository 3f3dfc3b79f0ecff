"""A disk cache of LLMs with their LoRA adapters merged in, so a fresh process skips the merge.

A folder we wrote may carry LoRA adapters beside an LLM that comes from elsewhere (the bundled model:
SmolLM2 from its package, adapters in the bundle). Merging them with peft costs seconds on a CPU
(about 7 s of a cold ``osprey describe`` here); loading the merged weights back costs a fraction.
The cache key covers everything the merged weights depend on: the adapter file and its config
(bytes), the base LLM's class, config and a sample of every base tensor (shape, dtype and its first
values), so a changed adapter, base or dtype is a miss, never a stale hit. Entries live under
``$OSPREY_CACHE/merged`` (default ``~/.cache/osprey``), are written atomically, and only LLMs of at
least :data:`MIN_PARAMETERS` are cached (tiny test models merge in milliseconds); the oldest
entries beyond :data:`MAX_ENTRIES` are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

log = logging.getLogger(__name__)

MIN_PARAMETERS = 10_000_000
MAX_ENTRIES = 4
_SAMPLE = 64  # leading values of each base tensor that enter the key


def cache_root() -> Path:
    return Path(os.environ.get("OSPREY_CACHE", Path.home() / ".cache" / "osprey")) / "merged"


def worth_caching(llm: torch.nn.Module) -> bool:
    return sum(p.numel() for p in llm.parameters()) >= MIN_PARAMETERS


def merged_key(llm: torch.nn.Module, adapter_file: Path, adapter_config: Path) -> str:
    """The key of ``llm`` (the base, before the adapters) merged with these adapter files."""
    digest = hashlib.sha256()
    for path in (adapter_file, adapter_config):
        digest.update(path.read_bytes())
    digest.update(type(llm).__qualname__.encode())
    config = getattr(llm, "config", None)
    if config is not None:
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(llm.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().reshape(-1)[:_SAMPLE].to(torch.float64).cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


def load_merged(llm: torch.nn.Module, key: str) -> bool:
    """Fill ``llm`` (the base LLM, same architecture) with the cached merged weights; False on a miss."""
    path = cache_root() / f"{key}.safetensors"
    if not path.exists():
        return False
    try:
        missing, unexpected = load_model(llm, str(path), strict=False)
    except Exception as err:  # a truncated or foreign file (SafetensorError is its own type): merge again
        log.warning("ignoring the merged-LLM cache entry %s (%s)", path, err)
        return False
    if missing or unexpected:
        raise RuntimeError(f"{path}: cached merged LLM does not fit the model (missing {list(missing)[:3]}, "
                           f"unexpected {list(unexpected)[:3]}); delete the file to rebuild it")
    os.utime(path)  # most recently used
    return True


def store_merged(llm: torch.nn.Module, key: str) -> Path | None:
    """Write the merged ``llm`` under ``key`` (atomically); None when the cache folder is not writable."""
    root = cache_root()
    path = root / f"{key}.safetensors"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        root.mkdir(parents=True, exist_ok=True)
        save_model(llm, str(tmp))
        os.replace(tmp, path)
    except OSError as err:
        log.warning("could not write the merged-LLM cache at %s (%s); the next load merges again", root, err)
        tmp.unlink(missing_ok=True)
        return None
    entries = sorted(root.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)
    return path
