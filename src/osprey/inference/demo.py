"""The official demo's behaviour (demo/app.py, demo/osprey_inference.py), for official checkpoints.

* prompt: ``"<image>\\n\\nThis provides an overview of the picture.\\n"`` + the question, given to the
  template as written (:data:`osprey.text.prompts.DEMO_OVERVIEW`); a model trained here keeps the
  prefix it was trained with (``OVERVIEW``);
* answer post-processing: strip, drop a trailing ``</s>``, keep the text after the first ``:`` (up to
  a second one), then stop at the first repeated sentence (split on ``.``);
* an uploaded image taller than 512 px is resized to height 512 (cv2 linear) before SAM and Osprey;
* one SAM mask per click (``multimask_output=False``).

Ours (the default for models trained here, and an option for any model): the trained prefix, the
answer as decoded (nothing cut), the image at full resolution (finer masks), SAM's best of three
masks for one click. :func:`demo_style` picks; docs/fidelity.md lists what each changes.

The same style works the same in ``osprey describe``, ``osprey chat``, the API's ``demo_style``
field and the web demo's selector: regions are made at the image's own size (SAM or GrabCut for
clicks and boxes), then :meth:`DemoStyle.inputs` downscales the image and its masks together for
the model, the prefix goes on the first user turn, :meth:`DemoStyle.answer` post-processes every
answer (a stream is sent whole, as one piece, when it does), :func:`clicks` sets SAM's click rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from osprey.text.prompts import DEMO_OVERVIEW, OVERVIEW

DEMO_STYLES = ("auto", "official", "ours")  # what --demo-style and the API's demo_style accept
DEMO_MAX_HEIGHT = 512
STOP = "</s>"


def official_demo_answer(text: str) -> str:
    """The official demo's post-processing of one decoded answer."""
    out = text.strip()
    if out.endswith(STOP):
        out = out[: -len(STOP)]
    out = out.strip()
    if ":" in out:  # (the official indexes split(':')[1] unguarded; an answer without ':' stays whole here)
        out = out.split(":")[1]
    kept: list[str] = []
    for sentence in out.split("."):
        if sentence in kept:
            break
        if sentence:
            kept.append(sentence)
    return "".join(s + "." for s in kept)


def downscale_for_demo(rgb: np.ndarray, max_height: int = DEMO_MAX_HEIGHT) -> np.ndarray:
    """(H, W, 3) uint8 -> resized to height ``max_height`` (width scaled, truncated to int) with cv2's
    linear interpolation when taller, as the official demo does before SAM and Osprey; else unchanged."""
    height, width = rgb.shape[:2]
    if height <= max_height:
        return rgb
    import cv2

    size = (int(width * max_height / height), max_height)
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class DemoStyle:
    name: str  # "official" or "ours"
    prefix: str  # the first-turn prefix before the question
    postprocess: bool  # official_demo_answer on every answer
    max_height: int | None  # downscale taller images before SAM and the model (None: never)
    multimask_click: bool  # SAM: best of three masks for one click (False: one mask, as the official)

    def answer(self, text: str) -> str:
        """The answer as shown; an ``inference.predictor.Answer`` keeps its usage and finish reason
        (duck-typed: importing the predictor would load torch when the CLI registers its commands)."""
        if not self.postprocess:
            return text
        out = official_demo_answer(text)
        if hasattr(text, "finish_reason"):
            return type(text)(out, prompt_tokens=text.prompt_tokens, completion_tokens=text.completion_tokens,
                              finish_reason=text.finish_reason)
        return out

    def image(self, rgb: np.ndarray) -> np.ndarray:
        return rgb if self.max_height is None else downscale_for_demo(rgb, self.max_height)

    def inputs(self, image: Image.Image, masks: np.ndarray) -> tuple[Image.Image, np.ndarray]:
        """The image and its ``(R, H, W)`` masks as the model gets them: downscaled together (the
        masks nearest-neighbour, to the image's new size) when the style downscales; else as given."""
        from osprey.masks import resize_mask  # (torch: only when a command runs)

        rgb = np.asarray(image.convert("RGB"))
        small = self.image(rgb)
        if small is rgb:
            return image, masks
        size = small.shape[:2]  # (h, w)
        resized = [resize_mask(np.asarray(m), size) for m in masks]
        return Image.fromarray(small), np.stack(resized) if resized else np.zeros((0, *size), dtype=bool)


OFFICIAL = DemoStyle("official", DEMO_OVERVIEW, True, DEMO_MAX_HEIGHT, False)
OURS = DemoStyle("ours", OVERVIEW, False, None, True)


def demo_style(model, choice: str = "auto") -> DemoStyle:
    """``official`` / ``ours``, or ``auto``: official for an official checkpoint folder (the released
    Osprey-7B), ours for every model trained here (it keeps its trained prompt)."""
    if choice == "official":
        return OFFICIAL
    if choice == "ours":
        return OURS
    if choice != "auto":
        raise ValueError(f"demo style {str(choice)[:40]!r}; expected one of {', '.join(DEMO_STYLES)}")
    return OFFICIAL if getattr(model, "official_checkpoint", False) else OURS


@contextmanager
def clicks(provider: Any, style: DemoStyle) -> Iterator[Any]:
    """``provider`` with the style's one-click rule (SAM's ``multimask_click``) while the block runs;
    providers without the rule (GrabCut) are unchanged."""
    if not hasattr(provider, "multimask_click"):
        yield provider
        return
    before = provider.multimask_click
    provider.multimask_click = style.multimask_click
    try:
        yield provider
    finally:
        provider.multimask_click = before
