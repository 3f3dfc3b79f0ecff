"""``osprey data validate`` and ``osprey data show``.

validate: read FILE with the parser ``--source``, check every record (see
:mod:`osprey.data.validate`), print counts per problem and each bad record's index and reason,
optionally write the good records to ``--keep-good`` in the same layout and the report to
``--report-json``. Exit 0 if every record is
good, 1 if any is bad or the file cannot be read as records, 2 on usage errors (unknown source,
missing file).

show: render record ``--index`` of FILE as a PNG (image, numbered mask overlays, conversation).

synth, curate, part-level, pos-neg: generate data; they live with the code that produces data
(:mod:`osprey.synthetic.cli`, :mod:`osprey.curate.cli`) and :mod:`osprey.cli` adds them to this group.

``add_data_subcommands(subparsers)`` adds validate and show under an existing ``argparse``
sub-command parser; ``python -m osprey.data.cli`` runs them on their own.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from osprey.data.errors import RecordError, SourceError
from osprey.data.parsers import PARSERS, get_parser, parse_one

EXIT_OK, EXIT_BAD_DATA, EXIT_USAGE = 0, 1, 2


def add_data_subcommands(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add ``data`` with its ``validate`` and ``show`` sub-commands (each sets ``func(args) -> int``);
    returns the group's sub-parsers, where :mod:`osprey.cli` adds the generators (``synth``,
    ``curate``, ``part-level``, ``pos-neg``), which live in :mod:`osprey.synthetic` and :mod:`osprey.curate`."""
    data = subparsers.add_parser("data", help="check, look at and generate annotation files")
    commands = data.add_subparsers(
        dest="data_command", metavar="{validate,show,synth,curate,part-level,pos-neg}", required=True
    )
    sources = ", ".join(sorted(PARSERS))

    validate = commands.add_parser(
        "validate",
        help="check every record of an annotation file and report each bad one",
        description="Check FILE record by record: schema, masks decodable and inside the image, region "
        "references consistent with the masks, images present. Exit 1 if any record is bad.",
    )
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.add_argument("--source", required=True, metavar="NAME", help=f"parser name: {sources}")
    validate.add_argument(
        "--images", type=Path, metavar="DIR", help="image folder (checks images; VCR metadata)"
    )
    validate.add_argument("--keep-good", type=Path, metavar="OUT", help="write the good records here")
    validate.add_argument("--seed", type=int, default=0, help="seed of template/region draws (default 0)")
    validate.add_argument(
        "--no-decode", action="store_true", help="skip decoding masks (structural checks only)"
    )
    validate.add_argument(
        "--max-listed", type=int, default=0, metavar="N", help="list at most N problems (default: all)"
    )
    validate.add_argument("--report-json", type=Path, metavar="OUT", help="also write the report as JSON")
    validate.set_defaults(func=run_validate)

    show = commands.add_parser(
        "show",
        help="render one record as a PNG",
        description="Render record INDEX of FILE: the image with numbered mask overlays and the conversation.",
    )
    show.add_argument("file", type=Path, metavar="FILE")
    show.add_argument("--source", required=True, metavar="NAME", help=f"parser name: {sources}")
    show.add_argument("--images", type=Path, metavar="DIR", help="image folder")
    show.add_argument("--index", type=int, default=0, help="record index (default 0)")
    show.add_argument("--out", type=Path, metavar="PNG", help="output file (default <source>_<index>.png)")
    show.add_argument("--seed", type=int, default=0, help="seed of template/region draws (default 0)")
    show.set_defaults(func=run_show)
    return commands


def run_validate(args: argparse.Namespace) -> int:
    """Validate one file; print the report; return the exit code."""
    from osprey.data.validate import validate_file

    if (code := _check_usage(args)) is not None:
        return code
    report, records = validate_file(
        args.file, args.source, images=args.images, seed=args.seed, decode_masks=not args.no_decode
    )
    print(report.format(max_listed=args.max_listed or None))
    if args.report_json is not None:
        args.report_json.write_text(
            json.dumps(report.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if args.keep_good is not None and report.file_error is None:
        good = [records[i] for i in report.good_indices]
        get_parser(args.source).save(good, args.keep_good)
        print(f"  kept {len(good)} good records in {args.keep_good}")
    return EXIT_OK if report.ok else EXIT_BAD_DATA


def run_show(args: argparse.Namespace) -> int:
    """Render one record; return the exit code."""
    from osprey.data.show import render_sample

    if (code := _check_usage(args)) is not None:
        return code
    parser = get_parser(args.source)
    try:
        records = parser.load(args.file, image_root=args.images)
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_DATA
    if not 0 <= args.index < len(records):
        print(
            f"error: --index {args.index}; expected 0..{len(records) - 1} ({len(records)} records)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        samples = parse_one(parser, records[args.index], rng=random.Random(args.seed), index=args.index)
    except RecordError as err:
        print(f"error: record {args.index} is bad ({err.problem}): {err.reason}", file=sys.stderr)
        return EXIT_BAD_DATA
    out = args.out or Path(f"{args.source.replace('+', 'plus')}_{args.index}.png")
    for k, sample in enumerate(samples):
        path = out if len(samples) == 1 else out.with_name(f"{out.stem}_{k}{out.suffix}")
        render_sample(sample, path, image_root=args.images)
        print(f"wrote {path}")
    return EXIT_OK


def _check_usage(args: argparse.Namespace) -> int | None:
    if args.source not in PARSERS:
        print(
            f"error: unknown source {args.source!r}; expected one of {', '.join(sorted(PARSERS))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not args.file.is_file():
        print(f"error: {str(args.file)!r} is not a file", file=sys.stderr)
        return EXIT_USAGE
    if args.images is not None and not args.images.is_dir():
        print(f"error: --images {str(args.images)!r} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    return None


def main(argv: Sequence[str] | None = None,
         *generators: Callable[[argparse._SubParsersAction], None]) -> int:
    """``python -m osprey.data.cli data validate ...`` or ``... validate ...`` (``data`` optional).

    ``generators`` add more commands to the group (``osprey.curate.cli.main`` runs its own this way).
    Exit 2 on usage errors, 0 on ``--help``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["data"]:
        argv = ["data", *argv]
    parser = argparse.ArgumentParser(prog="osprey")
    commands = add_data_subcommands(parser.add_subparsers(dest="command", required=True))
    for add in generators:
        add(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on usage errors, 0 on --help
        return int(exit_.code or 0)
    return args.func(args)


def register(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Hook for ``osprey.cli``: add the ``data`` command group; returns its sub-parsers."""
    return add_data_subcommands(subparsers)


if __name__ == "__main__":
    sys.exit(main())
