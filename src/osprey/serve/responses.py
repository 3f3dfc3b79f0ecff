"""What the server sends back: JSON bodies per route, the chat completion and its SSE chunks.

Pure functions of what a route parsed and what the model worker returned; nothing here touches the
model or the request.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from osprey.inference.predictor import Answer
from osprey.masks import mask_record
from osprey.serve.payloads import DescribeRequest, SegmentRequest
from osprey.serve.service import RegionService

__all__ = ["SSE_DONE", "Completion", "describe_response", "mask_record", "meta", "segment_response", "sse_error"]

SSE_DONE = "data: [DONE]\n\n"


def meta(service: RegionService) -> dict:
    """Which model answered, and a warning when its weights are random."""
    return {"model": service.model_name, "random_init": service.random_init,
            **({"note": service.note} if service.note else {})}


def describe_response(service: RegionService, request: DescribeRequest, masks: np.ndarray,
                      answers: Sequence[str], seconds: float) -> dict:
    regions = [{**mask_record(i, m), "answer": a} for i, (m, a) in enumerate(zip(masks, answers, strict=True))]
    return {**meta(service), "size": [request.image.height, request.image.width], "mode": request.mode,
            "regions": regions, "seconds": round(seconds, 3)}


def segment_response(service: RegionService, request: SegmentRequest, records: Sequence[dict],
                     picked: int | None) -> dict:
    """``records``: :func:`mask_record` of every mask (encoded on the worker, one at a time)."""
    return {"provider": service.provider.name, "size": [request.image.height, request.image.width],
            "masks": list(records), "picked": picked}


@dataclass(frozen=True)
class Completion:
    """One OpenAI chat completion: its identity, shared by the whole answer or every chunk of a stream."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def response(self, answer: Answer, extra: dict) -> dict:
        """The ``chat.completion`` object, with ``usage`` as the generator counted it."""
        usage = {"completion_tokens": answer.completion_tokens, "prompt_tokens": answer.prompt_tokens,
                 "total_tokens": answer.prompt_tokens + answer.completion_tokens}
        return {**self._head("chat.completion"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": str(answer)},
                             "finish_reason": answer.finish_reason}],
                "usage": usage, "osprey": extra}

    def chunk(self, delta: dict, finish: str | None = None) -> str:
        """One server-sent ``chat.completion.chunk`` event."""
        payload = {**self._head("chat.completion.chunk"),
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def sse_error(message: str, status: int) -> str:
    """The event that ends a stream which failed after its 200 was sent: OpenAI's error object (the
    envelope of every other error), the would-be HTTP status in ``code``."""
    kind = "invalid_request_error" if status < 500 else ("timeout_error" if status == 504 else "server_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
