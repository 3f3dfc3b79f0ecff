"""``data_strictness: lenient``: repair, before parsing, what the strict checks reject but the
official code trains on anyway, and count every repair (``summary.json``: ``repaired``).

Repairs (each counted under its name):
* ``short_polygon``: a polygon with fewer than 6 coordinates (or an odd count) — pycocotools
  rasterises it to a sliver and the official trains on that — is padded by repeating its last
  point (an even count, at least 3 points); a polygon with no point is dropped (``empty_polygon``);
* ``coords_clipped``: polygon coordinates more than ``COORD_TOLERANCE`` px outside the image are
  clipped to it (rasterisation clips them anyway);
* ``rle_size_rescaled``: an RLE (compressed or uncompressed) whose ``size`` differs from the
  record's ``[height, width]``. The official ``annToMask`` hands a compressed RLE to pycocotools as
  it is, and ``frPyObjects`` keeps an uncompressed one at its own ``size`` (the record's H and W are
  ignored), so the mask decodes at the RLE's size; the mask extractor then interpolates it to each
  feature map, i.e. stretches it over the whole image. The repair decodes it at its own size and
  stretches it to the record's size (nearest neighbour, re-encoded as compressed RLE): the same
  placement, up to the rounding of edge pixels. (When such a mask sits beside masks of the
  record's size, the official ``np.array(gt_masks)`` of unequal shapes fails and stops training;
  lenient mode repairs each mask alone.) Runs that do not add up to the RLE's own size are not
  repaired;
* ``lvis_mentions_renumbered``: LVIS positive/negative questions whose ``<regionK>`` mentions are not
  exactly 1..N in order are renumbered in order of appearance, the binding the official
  ``re.sub(r'<region\\d+>', '<mask><pos>')`` makes (the i-th mention is the i-th mask), when there
  are as many mentions as masks.

Not repaired (still dropped and counted): undecodable data (an RLE whose runs do not fill its own
``size``, a malformed segmentation). A record whose size differs from its image file's is counted as
``mask_image_size_mismatch``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from osprey.masks import COORD_TOLERANCE, MaskError, decode_rle, encode_rle, resize_mask

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


def _rescale_rle(rle: dict, height: int, width: int, counts: Counter[str]) -> dict:
    size = rle.get("size")
    if (not isinstance(size, list | tuple) or len(size) != 2 or list(size) == [height, width]
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return rle  # the record's size already, or not a size at all: the strict check reports it
    try:
        mask = decode_rle(dict(rle, size=list(size)), int(size[0]), int(size[1]))  # (h', w') at its own size
    except MaskError:
        return rle  # runs that do not fill its own size: undecodable, dropped and counted by the check
    counts["rle_size_rescaled"] += 1
    return encode_rle(resize_mask(mask, (height, width)))  # (H, W)


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
    sized = record.get("image") if isinstance(record.get("image"), dict) else record  # COCO layout: the image entry
    height = sized["height"] if isinstance(sized.get("height"), int) else height
    width = sized["width"] if isinstance(sized.get("width"), int) else width
    out = {}
    for key, value in record.items():
        if key == "segmentation" and isinstance(value, list) and value and isinstance(value[0], list | tuple):
            out[key] = _repair_polygons(value, height, width, counts)
        elif key == "segmentation" and isinstance(value, dict) and "counts" in value and height and width:
            out[key] = _rescale_rle(value, height, width, counts)
        else:
            out[key] = repair_record(value, parser, counts, height, width)
    if parser == "osprey_lvis_positive_negative" and isinstance(out.get("conversations"), list):
        regions = len(out.get("annotation", []) or [])
        out["conversations"] = _renumber(out["conversations"], regions, counts)
    return out
