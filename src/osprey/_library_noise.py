"""Silence two known, harmless messages that third-party libraries log on every run here.

transformers and peft import torchao whenever it is installed (it is, for ``--quantize``), and
torchao 0.18 then logs one "Failed to load …" warning per CUDA-only extension (``_C_mxfp8``,
``_C_cutlass_90a``) on a machine without CUDA, and torch 2.13's pytree logs a deprecation warning
for each Enum torchao registers. Each filter drops exactly those records; every other message of
these loggers is kept.
"""

from __future__ import annotations

import logging

_CUDA_ONLY_EXTENSIONS = ("_C_mxfp8", "_C_cutlass")
_ENUM_NOTICE = "is an Enum subclass and is now natively supported"


class _Drop(logging.Filter):
    def __init__(self, test) -> None:
        super().__init__()
        self._test = test

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._test(record.getMessage())


def install() -> None:
    """Add the two filters (idempotent)."""
    torchao = logging.getLogger("torchao")
    pytree = logging.getLogger("torch.utils._pytree")
    if not any(isinstance(f, _Drop) for f in torchao.filters):
        torchao.addFilter(_Drop(lambda m: m.startswith("Failed to load")
                                and any(name in m for name in _CUDA_ONLY_EXTENSIONS)))
    if not any(isinstance(f, _Drop) for f in pytree.filters):
        pytree.addFilter(_Drop(lambda m: _ENUM_NOTICE in m))
