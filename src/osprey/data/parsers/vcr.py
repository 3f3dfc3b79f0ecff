"""VCR (official ``osprey/datasets/vcr.py``, itself from GPT4RoI): question -> answer, "why?" -> rationale.

Layout: ``train.jsonl``, one annotation per line: ``objects`` (class names), ``img_fn``,
``metadata_fn``, ``question_orig`` / ``answer_orig`` / ``rationale_orig`` (strings naming objects by
1-based numbers, "Why is 1 smiling at 2?") and the tokenised ``question`` / ``answer_choices`` +
``answer_label`` / ``rationale_choices`` + ``rationale_label`` (tokens are words or lists of 0-based
object indices). The boxes (``[x1, y1, x2, y2, score]``), polygons (``segms``: per object a list of
polygons of ``[x, y]`` points, image coordinates) and ``width``/``height`` live in the per-image
metadata JSON at ``<image folder>/<metadata_fn>``; :func:`load_vcr` attaches it when given the image
folder. Records may also carry ``boxes``/``segms``/``width``/``height`` inline.

Official behaviour kept: all objects are regions, listed in turn 1 as ``region1 <mask><pos>,...``
after a random intro; numbers in the texts become ``"{class} at region{n}"``; turn 2 is a random
WHY question; the ``"<image>."`` template gives ``"<image>\\n.\\nThis provides..."`` after the image
token is normalised. Fixed: the official ``class_names[int(n)]`` is off by one (numbers are
1-based); here it is ``objects[n - 1]``, and a number outside ``1..len(objects)`` is a ``text``
error (officially an IndexError for the last object, caught and the sample silently dropped).
Decided differently: the intro and WHY question are drawn from ``rng`` per call (officially the intro
once at load); polygons are rasterised by pycocotools like every other source (officially with
matplotlib ``Path.contains_points`` on a grid inside the box; the two differ by at most the
boundary pixels). Without ``*_orig`` strings the tokenised fields are used: an index list ``[0, 1]``
reads "person at region1 and person at region2". Lines that are not JSON are records with a
``schema`` error (the index is the 0-based number of the non-blank line).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from osprey.data.errors import MASK, NO_REGIONS, REGION_REFS, SCHEMA, TEXT, RecordError, SourceError
from osprey.data.parsers.base import Parser, Record, get, get_size, make_sample, region_from_segmentation
from osprey.data.prompts import VCR_BEGIN, VCR_REGION_INTROS, VCR_WHY_QUESTIONS, vcr_region_listing
from osprey.data.sample import ImageRef, Sample

_NUMBER_RE = re.compile(r"\b(\d+)\b")  # the official pattern
_PRIVATE_KEYS = ("_metadata", "_metadata_error", "_invalid_json", "_raw")


def load_vcr(path: str | Path, *, image_root: str | Path | None = None) -> list[Record]:
    """Records of a VCR ``*.jsonl`` file, with their image's metadata attached when ``image_root`` is given."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise SourceError(f"annotation file {str(path)!r} does not exist") from err
    records: list[Record] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            records.append({"_invalid_json": str(err), "_raw": line})
            continue
        if image_root is not None and isinstance(record, dict):
            _attach_metadata(record, Path(image_root))
        records.append(record)
    return records


def _attach_metadata(record: dict[str, Any], image_root: Path) -> None:
    if "segms" in record or not isinstance(record.get("metadata_fn"), str):
        return
    meta_path = image_root / record["metadata_fn"]
    try:
        record["_metadata"] = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        record["_metadata_error"] = f"metadata file {str(meta_path)!r} cannot be read ({type(err).__name__})"


def save_vcr(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write records back as JSON lines, without what :func:`load_vcr` attached."""
    with Path(path).open("w", encoding="utf-8") as f:
        for record in records:
            if "_raw" in record:
                f.write(record["_raw"] + "\n")
                continue
            clean = {k: v for k, v in record.items() if k not in _PRIVATE_KEYS}
            f.write(json.dumps(clean, ensure_ascii=False) + "\n")


def _name_numbers(text: str, objects: Sequence[str], index: int, what: str) -> str:
    """Official ``replace_numbers_with_tags`` with the off-by-one fixed: ``n`` -> ``objects[n - 1]``."""

    def name(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if not 1 <= n <= len(objects):
            raise RecordError(
                TEXT,
                f"{what} {text[:60]!r} mentions object {n}; expected 1..{len(objects)} ({len(objects)} objects)",
                index,
            )
        return f"{objects[n - 1]} at region{n}"

    return _NUMBER_RE.sub(name, text)


def _detokenize(tokens: Any, objects: Sequence[str], index: int, what: str) -> str:
    """Tokenised VCR text (words and lists of 0-based object indices) as a sentence."""
    if not isinstance(tokens, list) or not tokens:
        raise RecordError(SCHEMA, f"{what} tokens are {str(tokens)[:60]}; expected a non-empty list", index)
    words = []
    for token in tokens:
        if isinstance(token, str):
            words.append(token)
            continue
        if not isinstance(token, list) or not token or not all(isinstance(i, int) for i in token):
            raise RecordError(
                SCHEMA, f"{what} token {token!r}; expected a word or a list of object indices", index
            )
        bad = [i for i in token if not 0 <= i < len(objects)]
        if bad:
            raise RecordError(
                TEXT, f"{what} refers to object index {bad[0]}; expected 0..{len(objects) - 1}", index
            )
        names = [f"{objects[i]} at region{i + 1}" for i in token]
        words.append(names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])
    text = " ".join(words)
    text = re.sub(r"\s+([?.!,;:])", r"\1", text)
    return re.sub(r"\s+('(?:s|re|ve|ll|d|m)\b|n't\b)", r"\1", text)


def _text(record: Mapping[str, Any], objects: Sequence[str], index: int, kind: str) -> str:
    orig = record.get(f"{kind}_orig")
    if orig is not None:
        if not isinstance(orig, str) or not orig.strip():
            raise RecordError(TEXT, f"'{kind}_orig' is {orig!r}; expected non-empty text", index)
        return _name_numbers(orig, objects, index, f"'{kind}_orig'")
    if kind == "question":
        return _detokenize(record.get("question"), objects, index, "question")
    choices = get(record, f"{kind}_choices", list, index)
    label = get(record, f"{kind}_label", int, index)
    if not 0 <= label < len(choices):
        raise RecordError(SCHEMA, f"'{kind}_label' {label}; expected 0..{len(choices) - 1}", index)
    return _detokenize(choices[label], objects, index, f"{kind} choice {label}")


def _polygon_to_coco(polygon: Any, index: int, k: int) -> list[float]:
    if not isinstance(polygon, list) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in polygon):
        raise RecordError(
            MASK, f"region {k}: polygon {str(polygon)[:60]}; expected a list of [x, y] points", index
        )
    return [float(v) for point in polygon for v in point]


def parse_vcr(record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """One VCR annotation: all objects as regions, question -> answer, then why -> rationale."""
    if "_invalid_json" in record:
        raise RecordError(SCHEMA, f"line is not JSON ({record['_invalid_json']})", index)
    if "_metadata_error" in record:
        raise RecordError(SCHEMA, record["_metadata_error"], index)
    objects = get(record, "objects", list, index)
    if not objects:
        raise RecordError(NO_REGIONS, "'objects' is empty; expected at least one object", index)
    if not all(isinstance(o, str) and o for o in objects):
        raise RecordError(SCHEMA, f"'objects' {objects!r}; expected class names", index)
    img_fn = get(record, "img_fn", str, index)
    if "_metadata" not in record and "segms" not in record and "metadata_fn" in record:
        raise RecordError(
            SCHEMA,
            f"no 'segms': metadata {record['metadata_fn']!r} was not loaded; expected the image folder to read it",
            index,
        )
    geometry = record.get("_metadata", record)
    segms = get(geometry, "segms", list, index, what="metadata")
    boxes = get(geometry, "boxes", list, index, what="metadata")
    height, width = get_size(geometry, index, what="metadata")
    if not len(segms) == len(boxes) == len(objects):
        raise RecordError(
            REGION_REFS,
            f"{len(objects)} objects, {len(boxes)} boxes, {len(segms)} segms; expected one each per object",
            index,
        )

    regions = []
    for k, polygons in enumerate(segms, start=1):
        if not isinstance(polygons, list) or not polygons:
            raise RecordError(
                MASK, f"region {k} ({objects[k - 1]}) has no polygon; expected a list of polygons", index
            )
        coco_polygons = [_polygon_to_coco(p, index, k) for p in polygons]
        regions.append(region_from_segmentation(coco_polygons, height, width, index, k))

    question = _text(record, objects, index, "question")
    answer = _text(record, objects, index, "answer")
    rationale = _text(record, objects, index, "rationale")
    listing = vcr_region_listing([f"<region{k}>" for k in range(1, len(regions) + 1)])
    intro = rng.choice(VCR_REGION_INTROS).replace("<region>", listing)
    texts = [VCR_BEGIN + intro + question, answer, rng.choice(VCR_WHY_QUESTIONS), rationale]
    return [
        make_sample(
            source="vcr", task="reasoning", index=index, image=ImageRef(img_fn, height, width), regions=regions,
            texts=texts, meta={"annot_id": record.get("annot_id"), "img_fn": img_fn},
        )
    ]  # fmt: skip


PARSERS: dict[str, Parser] = {
    "vcr": Parser(
        name="vcr", task="reasoning", load=load_vcr, parse=parse_vcr, save=save_vcr,
        description="VCR question/answer/rationale (train.jsonl + per-image metadata)",
    )
}  # fmt: skip
