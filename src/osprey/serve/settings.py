"""Server settings: one frozen dataclass, filled from ``osprey serve`` flags or by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeSettings:
    model: str | None = None  # bundled / preset name (random init) / model folder; None: bundled if installed, else tiny
    host: str = "127.0.0.1"  # loopback only unless the operator says otherwise
    port: int = 8000
    token: str | None = None  # when set, every /v1 call needs "Authorization: Bearer <token>"
    sam_checkpoint: Path | None = None  # local SAM/SAM 2/MobileSAM file; None = weight-free provider
    sam_type: str = "vit_b"
    device: str = "auto"  # where the model runs: auto (a GPU when there is one), cpu, cuda, cuda:N
    dtype: str = "auto"  # the model's precision: auto (as stored), float32, bfloat16, float16 (GPU only)
    quantize: str = "none"  # weight-only int8 / int4 (GPU) of the LLM and projector (osprey.model.quantize)
    ui: bool = False  # serve the web demo at "/"
    queue_size: int = 8  # requests waiting for the one model worker; more get 429
    request_timeout_s: float = 120.0  # from enqueue to answer; then 504 and the job is cancelled
    max_body_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096  # checked from the image header, before decoding (413)
    max_aspect_ratio: float = 10.0  # long side / short side, from the header (413)
    max_mask_pixels: int = 4096 * 4096  # regions x image pixels in one request (413): masks are resized at full size
    provider_pixels: int = 1024 * 1024  # the mask provider (clicks, boxes, everything) runs on a copy at most this big
    max_text_chars: int = 8000  # a question, or all of a chat's message text (413)
    max_prompt_tokens: int = 4096  # the rendered prompt, counted on the worker before prefill (413)
    max_regions: int = 32
    # Answer lengths: the official demo and evals allow 1024 new tokens. ``max_new_tokens`` caps what a
    # client may ask for (``osprey serve --max-new-tokens``); ``default_new_tokens`` is used when a
    # request names none (the web demo names none), never above the cap.
    max_new_tokens: int = 1024
    default_new_tokens: int = 1024
    max_messages: int = 64
    # Continuous batching (docs/serving.md): the rows (one region question each) of every running
    # request decode together, up to ``max_batch_rows`` (1: one request at a time) and a worst-case
    # KV budget; repeated requests on one image reuse its encoding and its prompt prefix's K/V
    # from an LRU of ``cache_bytes`` (0: off).
    max_batch_rows: int = 16
    kv_budget_bytes: int = 1024 * 1024 * 1024
    cache_bytes: int = 256 * 1024 * 1024
    ignore_eos: bool = False  # benchmarks only: every answer runs to its max_new_tokens (EOS is a token)

    def __post_init__(self) -> None:
        for name in ("queue_size", "max_body_bytes", "max_image_pixels", "max_regions", "max_new_tokens",
                     "default_new_tokens", "max_messages", "max_mask_pixels", "provider_pixels", "max_text_chars",
                     "max_prompt_tokens", "max_batch_rows", "kv_budget_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if self.cache_bytes < 0:
            raise ValueError(f"cache_bytes={self.cache_bytes}: expected >= 0 (0 turns the cache off)")
        if not self.max_aspect_ratio >= 1:
            raise ValueError(f"max_aspect_ratio={self.max_aspect_ratio}: expected >= 1")
        if self.default_new_tokens > self.max_new_tokens:
            object.__setattr__(self, "default_new_tokens", self.max_new_tokens)
        if self.request_timeout_s <= 0:
            raise ValueError(f"request_timeout_s={self.request_timeout_s}: expected > 0 seconds")
        if self.token is not None and not self.token.strip():
            raise ValueError("token is empty: pass a non-empty token or none")
