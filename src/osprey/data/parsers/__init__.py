"""One parser per source, registered by name in :data:`PARSERS`.

``PARSERS[name].load(path, image_root=...)`` reads a file into raw records;
``PARSERS[name].parse(record, rng=rng, index=i)`` gives that record's samples or raises
:class:`~osprey.data.errors.RecordError`; :func:`parse_records` runs a parser over a file and keeps
every failure with its index. Names: the five Osprey-724K files (``osprey_short_form``,
``osprey_conversation``, ``osprey_detail_description``, ``osprey_part_level``,
``osprey_lvis_positive_negative``), ``coco_instances``, ``refcoco``, ``refcoco+``, ``refcocog``,
``pascal_part``, ``part_imagenet``, ``vg``, ``vcr`` and ``llava`` (image-level, stage 1).
"""

from __future__ import annotations

from osprey.data.parsers import llava, osprey724k, stage2, vcr
from osprey.data.parsers.base import Parser, ParseReport, Record, parse_one, parse_records

PARSERS: dict[str, Parser] = {**osprey724k.PARSERS, **stage2.PARSERS, **vcr.PARSERS, **llava.PARSERS}


def get_parser(name: str) -> Parser:
    """The parser registered as ``name``; a ``KeyError`` listing the known names otherwise."""
    try:
        return PARSERS[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; expected one of {', '.join(sorted(PARSERS))}") from None


__all__ = ["PARSERS", "ParseReport", "Parser", "Record", "get_parser", "parse_one", "parse_records"]
