"""``data_strictness: lenient``: repair, before parsing, what the strict checks reject but the
official code trains on anyway, and count every repair (``summary.json``: ``repaired``).

Repairs (each counted under its name):
* ``short_polygon``: a polygon with fewer than 6 coordinates (or an odd count) — pycocotools
  rasterises it to a sliver and the official trains on that — is padded by repeating its last
  point (an even count, at least 3 points); a polygon with no point is dropped (``empty_polygon``);
* ``coords_clipped``: polygon coordinates more than ``COORD_TOLERANCE`` px outside the image are
  clipped to it (rasterisation clips them anyway);
* ``lvis_mentions_renumbered``: LVIS positive/negative questions whose ``<regionK>`` mentions are not
  exactly 1..N in order are renumbered in order of appearance, the binding the official
  ``re.sub(r'<region\\d+>', '<mask><pos>')`` makes (the i-th mention is the i-th mask), when there
  are as many mentions as masks.

Not repaired (still dropped and counted): an RLE whose ``size`` differs from the record's (its
mask cannot be stacked with the image's others), undecodable data. The image/record size mismatch
is counted as ``mask_image_size_mismatch``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from osprey.masks import COORD_TOLERANCE

_REGION = re.compile(r"<region(\d+)>")


def _repair_polygons(polygons: list, height: int | None, width: int | None, counts: Counter[str]) -> list:
    out = []
    for poly in polygons:
        if not isinstance(poly, list | tuple) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in poly):
            out.append(poly)  # not a polygon of numbers: the strict check reports it
            continue
        poly = list(poly)
        if len(poly) % 2:
            poly = poly[:-1]
        if not poly:
            counts["empty_polygon"] += 1
            continue
        if len(poly) < 6:
            counts["short_polygon"] += 1
            while len(poly) < 6:
                poly += poly[-2:]
        if height and width:
            tol = COORD_TOLERANCE
            xs, ys = poly[0::2], poly[1::2]
            if min(xs) < -tol or min(ys) < -tol or max(xs) > width + tol or max(ys) > height + tol:
                counts["coords_clipped"] += 1
                poly = [min(max(v, 0.0), float(width if i % 2 == 0 else height)) for i, v in enumerate(poly)]
        out.append(poly)
    return out


def _renumber(conversations: list, regions: int, counts: Counter[str]) -> list:
    mentions = [int(k) for turn in conversations if isinstance(turn, dict)
                for k in _REGION.findall(str(turn.get("value", "")))]
    if mentions == list(range(1, regions + 1)) or len(mentions) != regions:
        return conversations
    counts["lvis_mentions_renumbered"] += 1
    counter = iter(range(1, regions + 1))
    fixed = []
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") in ("human", "user"):
            turn = {**turn, "value": _REGION.sub(lambda _m: f"<region{next(counter)}>", str(turn["value"]))}
        fixed.append(turn)
    return fixed


def repair_record(record: Any, parser: str, counts: Counter[str], height: int | None = None,
                  width: int | None = None) -> Any:
    """A repaired copy of ``record`` (the original is left alone); repairs counted in ``counts``."""
    if isinstance(record, list):
        return [repair_record(item, parser, counts, height, width) for item in record]
    if not isinstance(record, dict):
        return record
    height = record.get("height", height) if isinstance(record.get("height"), int) else height
    width = record.get("width", width) if isinstance(record.get("width"), int) else width
    out = {}
    for key, value in record.items():
        if key == "segmentation" and isinstance(value, list) and value and isinstance(value[0], list | tuple):
            out[key] = _repair_polygons(value, height, width, counts)
        else:
            out[key] = repair_record(value, parser, counts, height, width)
    if parser == "osprey_lvis_positive_negative" and isinstance(out.get("conversations"), list):
        regions = len(out.get("annotation", []) or [])
        out["conversations"] = _renumber(out["conversations"], regions, counts)
    return out
