"""``demo_style`` over HTTP: the request field of /v1/describe, /v1/chat/completions and /v1/segment.

``auto`` (the default, as ``osprey describe --demo-style``), ``official`` or ``ours``
(:mod:`osprey.inference.demo`); anything else is a 422 naming the value and the choices. The API
applies the resolved style exactly as the CLI does: SAM's click rule while the regions are made, the
image and its masks downscaled together for the model, the style's prefix on the first user turn,
its post-processing on every answer (an official-style stream is sent as one piece at the end,
since the post-processing needs the whole answer). Responses echo the resolved name
(``"demo_style": "official"``; chat completions under ``osprey``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from osprey.inference.demo import DEMO_STYLES, DemoStyle, demo_style
from osprey.serve.http import BadRequest

DEMO_STYLE = {"type": "string", "enum": list(DEMO_STYLES), "default": "auto",
              "description": "official: the official demo's prompt, answer post-processing, images taller than "
              "512 px downscaled, one SAM mask per click; ours: as trained; auto: official for an official "
              "checkpoint, else ours (as osprey describe/chat --demo-style)"}


def demo_style_field(body: Mapping) -> str:
    """The body's ``demo_style`` (absent or null: ``auto``), else a 422 naming the bad value and the choices."""
    value = body.get("demo_style")
    if value is None:  # absent or null: the default, as for every optional field
        return "auto"
    if not isinstance(value, str) or value not in DEMO_STYLES:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise BadRequest(f"demo_style is {shown}; expected one of {', '.join(DEMO_STYLES)}", status=422,
                         param="demo_style")
    return value


def style_for(service: Any, choice: str) -> DemoStyle:
    """The style ``choice`` names for the served model (``auto``: official for an official checkpoint)."""
    return demo_style(service.predictor.model, choice)
