"""Errors of the data path, each naming the bad value and what was expected (a mask that cannot
be decoded raises :class:`osprey.masks.MaskError`).

Nothing in the data path drops a record silently: a parser raises :class:`RecordError` for a record it
cannot turn into samples, and its caller counts the error under ``problem`` and reports it with the
record's index. ``problem`` is one of the short codes below so that reports can count per kind.
"""

from __future__ import annotations

# Problem codes, one per kind of defect (reports count per code).
SCHEMA = "schema"  # a key is missing or has the wrong type
NO_REGIONS = "no_regions"  # the record has no region to talk about
CONVERSATION = "conversation"  # empty, odd-length or misordered turns
REGION_REFS = "region_refs"  # region mentions in the text disagree with the masks
TEXT = "text"  # text that the official template cannot be applied to
MASK = "mask"  # a segmentation that cannot be decoded or lies outside the image
MASK_EMPTY = "mask_empty"  # a segmentation that decodes to no pixel
IMAGE_MISSING = "image_missing"
IMAGE_UNREADABLE = "image_unreadable"
IMAGE_SIZE = "image_size"  # the image on disk differs from the size the record declares


class SourceError(ValueError):
    """A whole annotation file that cannot be read in its source's layout (not a single record)."""


class RecordError(ValueError):
    """One raw record that cannot be turned into samples.

    ``index`` is the record's position in its file (set by whoever knows it; parsers receive it).
    """

    def __init__(self, problem: str, reason: str, index: int | None = None) -> None:
        self.problem = problem
        self.reason = reason
        self.index = index
        where = f"record {index}: " if index is not None else ""
        super().__init__(f"{where}{problem}: {reason}")
