"""Bulk region labelling: every region of a dataset answered (short and detailed description) into
JSONL, resumable and sharded one share of the images per process (``osprey label``, docs/labelling.md).

    from osprey.label import read_source, label, merge

Names load on first use, so registering the command (``osprey.label.cli``) imports no numpy or torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {"ShardWriter": "output", "merge": "output", "LabelStats": "runner", "label": "runner",
          "LabelError": "sources", "Source": "sources", "rank_and_world": "sources", "read_source": "sources",
          "shard": "sources"}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module 'osprey.label' has no attribute {name!r}")
    return getattr(importlib.import_module(f"osprey.label.{_NAMES[name]}"), name)
