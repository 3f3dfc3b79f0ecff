"""What every source parser is made of, and the checks they share.

A parser is two pure functions and a writer: ``load(path, *, image_root=None)`` reads a file in its
source's layout into a list of raw records (plain dicts, one per image or per referring expression,
in file order); ``parse(record, *, rng, index)`` turns one record into samples or raises
:class:`RecordError`; ``save(records, path)`` writes records back in the same layout (used to keep
the good records of a file). ``parse`` takes the random generator explicitly so that template and
region choices are drawn again every epoch by whoever calls it, never once at load.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from osprey.data.errors import MASK, SCHEMA, TEXT, RecordError, SourceError
from osprey.data.prompts import normalize_image_turn
from osprey.data.sample import REGION_TAG_RE, ImageRef, RegionMask, Sample, SampleError, Turn
from osprey.masks import MaskError

logger = logging.getLogger(__name__)

Record = dict[str, Any]
RESERVED_TOKENS = ("<mask>", "<pos>")


class ParseFn(Protocol):
    def __call__(self, record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]: ...


class LoadFn(Protocol):
    def __call__(self, path: str | Path, *, image_root: str | Path | None = None) -> list[Record]: ...


@dataclass(frozen=True)
class Parser:
    """One source: how to read its file, turn a record into samples and write records back."""

    name: str
    task: str
    load: LoadFn
    parse: ParseFn
    save: Callable[[Sequence[Record], str | Path], None]
    description: str = ""


@dataclass
class ParseReport:
    """Samples of a list of records plus every record that produced none, with its reason."""

    num_records: int = 0
    samples: list[Sample] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)

    @property
    def good_indices(self) -> list[int]:
        bad = {e.index for e in self.errors}
        return [i for i in range(self.num_records) if i not in bad]

    def problem_counts(self) -> Counter[str]:
        return Counter(e.problem for e in self.errors)


def parse_one(parser: Parser, record: Mapping[str, Any], *, rng: random.Random, index: int) -> list[Sample]:
    """``parser.parse`` that only ever raises :class:`RecordError` (with ``index`` set).

    A parser should raise :class:`RecordError` for every defect it can meet; anything else a
    malformed record triggers (``KeyError``, ``TypeError``...) is still turned into a schema error,
    so one odd record cannot stop a whole file.
    """
    try:
        return list(parser.parse(record, rng=rng, index=index))
    except RecordError as err:
        if err.index is None:
            err.index = index
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        logger.debug("unexpected error parsing record %d of %s", index, parser.name, exc_info=True)
        raise RecordError(SCHEMA, f"unexpected {type(err).__name__}: {err}", index) from err


def parse_records(parser: Parser, records: Iterable[Mapping[str, Any]], *, rng: random.Random) -> ParseReport:
    """Parse all ``records``; every failure is kept in the report with its index, never dropped."""
    report = ParseReport()
    for index, record in enumerate(records):
        report.num_records += 1
        try:
            report.samples.extend(parse_one(parser, record, rng=rng, index=index))
        except RecordError as err:
            report.errors.append(err)
    if report.errors:
        logger.warning(
            "%s: %d of %d records skipped (%s)",
            parser.name,
            len(report.errors),
            report.num_records,
            dict(report.problem_counts()),
        )
    return report


# --------------------------------------------------------------------------------------------------
# Field access that names the bad value


def get(
    record: Mapping[str, Any], key: str, types: type | tuple[type, ...], index: int, what: str = ""
) -> Any:
    """``record[key]`` if present and of ``types``; otherwise a schema :class:`RecordError`."""
    where = f"{what}: " if what else ""
    if not isinstance(record, Mapping):
        raise RecordError(
            SCHEMA, f"{where}record is a {type(record).__name__}; expected a JSON object", index
        )
    if key not in record:
        raise RecordError(SCHEMA, f"{where}missing key {key!r}", index)
    value = record[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        expected = " or ".join(t.__name__ for t in _as_tuple(types))
        raise RecordError(SCHEMA, f"{where}{key!r} is {_short(value)}; expected {expected}", index)
    return value


def get_size(record: Mapping[str, Any], index: int, what: str = "") -> tuple[int, int]:
    """``(height, width)`` of a record as positive ints (int-valued floats accepted, as ``int()`` did)."""
    size = []
    for key in ("height", "width"):
        value = get(record, key, (int, float), index, what)
        if value != int(value) or value <= 0:
            raise RecordError(
                SCHEMA, f"{what + ': ' if what else ''}{key} {value!r}; expected a positive int", index
            )
        size.append(int(value))
    return size[0], size[1]


def region_from_segmentation(segmentation: Any, height: int, width: int, index: int, k: int) -> RegionMask:
    """A checked :class:`RegionMask` for the ``k``-th region (1-based) of record ``index``."""
    try:
        region = RegionMask.from_segmentation(segmentation, height, width)
        region.check()
    except MaskError as err:
        raise RecordError(MASK, f"region {k}: {err}", index) from err
    return region


def plain_text(text: str) -> str:
    """Raw source text with ``<regionK>`` made plain (``regionK``), so it is not read as a region tag.

    The official loaders leave such literals in some texts (detailed descriptions); in our format a
    ``<regionK>`` always means a mask, so a literal one loses its brackets (as the official
    conversation loader does for all its text).
    """
    return REGION_TAG_RE.sub(lambda m: f"region{m.group(1)}", text)


def make_sample(
    *,
    source: str,
    task: str,
    index: int,
    image: ImageRef,
    regions: Sequence[RegionMask],
    texts: Sequence[str],
    meta: Mapping[str, Any] | None = None,
    suffix: str = "",
) -> Sample:
    """Build a sample from alternating user/assistant ``texts``; invariant breaks become RecordErrors.

    The first user text goes through the official ``<image>`` normalisation; texts holding the
    model's reserved tokens (``<mask>``, ``<pos>``) are refused, because they would be spliced as
    region features.
    """
    for i, text in enumerate(texts):
        for token in RESERVED_TOKENS:
            if token in text:
                raise RecordError(
                    TEXT, f"turn {i} contains the reserved token {token!r}: {_short(text)}", index
                )
    turns = tuple(
        Turn(role="user" if i % 2 == 0 else "assistant", text=normalize_image_turn(t) if i == 0 else t)
        for i, t in enumerate(texts)
    )
    try:
        return Sample(
            sample_id=f"{source}:{index}{suffix}",
            image=image,
            regions=tuple(regions),
            turns=turns,
            source=source,
            task=task,
            meta=dict(meta or {}),
        )
    except SampleError as err:
        raise RecordError(err.problem, err.reason, index) from err


def non_empty_text(value: Any, index: int, what: str) -> str:
    """A non-blank string, else a text :class:`RecordError` naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise RecordError(TEXT, f"{what} is {_short(value)}; expected non-empty text", index)
    return value


# --------------------------------------------------------------------------------------------------
# File layouts shared by several sources


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as err:
        raise SourceError(f"annotation file {str(path)!r} does not exist") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SourceError(f"annotation file {str(path)!r} is not valid JSON ({err})") from err


def load_json_list(path: str | Path, *, image_root: str | Path | None = None) -> list[Record]:
    """A JSON file whose top level is a list of per-image records (the Osprey-724K layout)."""
    data = load_json(path)
    if not isinstance(data, list):
        raise SourceError(f"{str(path)!r} holds a JSON {type(data).__name__}; expected a list of records")
    return data


def save_json_list(records: Sequence[Record], path: str | Path) -> None:
    with Path(path).open("w", encoding="utf-8") as f:
        json.dump(list(records), f, ensure_ascii=False)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
