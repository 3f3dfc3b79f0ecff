"""The one internal sample format every source is parsed into.

A :class:`Sample` is one image, its region masks (kept as raw annotations, decoded on demand by
:mod:`osprey.masks`) and a conversation about them. The conversation text refers to the image
as ``<image>`` and to region ``K`` (1-based, the ``K``-th entry of ``regions``) as ``<regionK>``,
placed exactly where the official loaders put ``<mask><pos>`` for that region. Rendering every
``<regionK>`` as ``<mask><pos>`` (:func:`official_text`) therefore reproduces the official training
strings byte for byte, while the tag still says which mask it means.

Invariants checked when a sample is built (so no later stage can meet a malformed one):
turns alternate user/assistant starting with the user; the first user turn starts with
``"<image>\\n"`` and no other ``<image>`` appears; ``<regionK>`` tags appear in user turns only,
every one has ``1 <= K <= len(regions)``, every region is mentioned, and regions are numbered in
order of first mention (as the official loaders bind the i-th ``<mask>`` to the i-th mask).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from osprey import masks as mask_ops
from osprey.data.errors import CONVERSATION, MASK, REGION_REFS
from osprey.masks import MaskError

if importlib.util.find_spec("osprey.text.conversation") is not None:
    from osprey.text.conversation import Turn
else:  # until osprey.text.conversation exists; identical definition

    @dataclass(frozen=True)
    class Turn:  # type: ignore[no-redef]
        """One message of a conversation."""

        role: Literal["user", "assistant"]
        text: str


IMAGE_TOKEN = "<image>"
REGION_TAG_RE = re.compile(r"<region(\d+)>")
OFFICIAL_REGION_TOKENS = "<mask><pos>"


class SampleError(ValueError):
    """A sample that breaks an invariant of the format; ``problem`` is an errors.* code."""

    def __init__(self, problem: str, reason: str) -> None:
        self.problem = problem
        self.reason = reason
        super().__init__(f"{problem}: {reason}")


@dataclass(frozen=True)
class ImageRef:
    """An image by path relative to its source's image folder, with its size when the record knows it."""

    path: str
    height: int | None = None
    width: int | None = None


@dataclass(frozen=True, eq=False)
class RegionMask:
    """One region's mask as its raw annotation (``kind`` in ``masks.MASK_KINDS``), decoded on demand.

    Keeping the raw annotation (a few hundred bytes) instead of a decoded ``H x W`` array keeps a
    parsed source small enough to hold in memory; ``decode`` costs a few ms when a sample is used.
    """

    kind: str
    data: Any
    height: int
    width: int

    def check(self) -> None:
        """Raise :class:`MaskError` if the annotation cannot decode (cheap, no rasterisation)."""
        mask_ops.check(self.kind, self.data, self.height, self.width)

    def decode(self, root: str | Path | None = None) -> np.ndarray:
        """The ``(height, width)`` bool mask; ``root`` resolves relative PNG paths."""
        return mask_ops.decode(self.kind, self.data, self.height, self.width, root=root)

    @classmethod
    def from_segmentation(cls, segmentation: Any, height: int, width: int) -> RegionMask:
        """From a COCO ``segmentation`` field (polygons, RLE or uncompressed RLE)."""
        return cls(mask_ops.infer_kind(segmentation), segmentation, height, width)


@dataclass(frozen=True, eq=False)
class Sample:
    """One training/eval example: an image, its regions and a conversation about them."""

    sample_id: str
    image: ImageRef
    regions: tuple[RegionMask, ...]
    turns: tuple[Turn, ...]
    source: str  # parser name, e.g. "osprey_conversation"
    task: str  # what is asked, e.g. "conversation", "category", "referring"
    meta: dict[str, Any] = field(default_factory=dict)  # provenance (record ids), never model input

    def __post_init__(self) -> None:
        check_turns(self.turns)
        check_region_mentions(self.turns, len(self.regions))

    def decode_masks(self, root: str | Path | None = None) -> list[np.ndarray]:
        """All region masks, decoded, in region order."""
        return [region.decode(root) for region in self.regions]


def region_mentions(text: str) -> list[int]:
    """Region numbers ``K`` of the ``<regionK>`` tags in ``text``, in order."""
    return [int(k) for k in REGION_TAG_RE.findall(text)]


def official_text(text: str) -> str:
    """``text`` with every ``<regionK>`` rendered as the official ``<mask><pos>``."""
    return REGION_TAG_RE.sub(OFFICIAL_REGION_TOKENS, text)


def check_turns(turns: Sequence[Turn]) -> None:
    """Raise :class:`SampleError` unless turns alternate user/assistant and the image leads turn 1."""
    if not turns:
        raise SampleError(CONVERSATION, "no turns; expected at least one user turn")
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise SampleError(CONVERSATION, f"turn {i} has role {turn.role!r}; expected {expected!r}")
        if not isinstance(turn.text, str):
            raise SampleError(CONVERSATION, f"turn {i} text is a {type(turn.text).__name__}; expected str")
    if not turns[0].text.startswith(IMAGE_TOKEN + "\n"):
        raise SampleError(CONVERSATION, f"turn 0 starts {turns[0].text[:30]!r}; expected '<image>\\n'")
    n_images = sum(turn.text.count(IMAGE_TOKEN) for turn in turns)
    if n_images != 1:
        raise SampleError(
            CONVERSATION, f"{n_images} '<image>' tokens in the conversation; expected exactly 1"
        )


def check_region_mentions(turns: Sequence[Turn], num_regions: int) -> None:
    """Raise :class:`SampleError` unless the ``<regionK>`` tags and the ``num_regions`` masks agree.

    Tags belong to user turns only: assistant text is plain (the renderer, ``osprey.text.render``,
    reads it as text), so a tag there would silently mean something else than it says.
    """
    for i, turn in enumerate(turns):
        if turn.role == "assistant" and region_mentions(turn.text):
            raise SampleError(
                REGION_REFS,
                f"assistant turn {i} holds region tag(s) {region_mentions(turn.text)}; expected plain text",
            )
    mentions = [k for turn in turns for k in region_mentions(turn.text)]
    bad = sorted({k for k in mentions if not 1 <= k <= num_regions})
    if bad:
        raise SampleError(
            REGION_REFS, f"text mentions region(s) {bad}; expected 1..{num_regions} ({num_regions} masks)"
        )
    first_seen = list(dict.fromkeys(mentions))
    if len(first_seen) != num_regions:
        missing = sorted(set(range(1, num_regions + 1)) - set(first_seen))
        raise SampleError(REGION_REFS, f"region(s) {missing} have a mask but are never mentioned")
    if first_seen != list(range(1, num_regions + 1)):
        raise SampleError(
            REGION_REFS, f"regions first mentioned in order {first_seen}; expected 1..{num_regions} in order"
        )


def check_regions(regions: Sequence[RegionMask]) -> None:
    """Raise :class:`SampleError` (problem ``mask``) naming the first region that cannot decode."""
    for k, region in enumerate(regions, start=1):
        try:
            region.check()
        except MaskError as err:
            raise SampleError(MASK, f"region {k}: {err}") from err
