"""``osprey serve``: the HTTP API and the web demo.

Registration is cheap (argparse and the settings dataclass); FastAPI, uvicorn and the model load
when the command runs. Every flag whose ``dest`` is a :class:`ServeSettings` field fills that
field, and the field's default is the flag's default, so a setting is named once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from osprey.flags import add_model_flags
from osprey.inference.cli import add_provider_flags
from osprey.serve.settings import ServeSettings

DEFAULTS = ServeSettings()
MIB = 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="HTTP API (describe, OpenAI-compatible chat, segment) and the web demo",
                       description="Serve the model over HTTP. Binds 127.0.0.1 unless --host says otherwise; "
                       "see docs/serving.md.")
    p.add_argument("--host", default=DEFAULTS.host)
    p.add_argument("--port", type=int, default=DEFAULTS.port)
    add_model_flags(p)
    add_provider_flags(p)
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /v1 calls")
    p.add_argument("--token-file", type=Path, default=None, help="read the token from this file (keeps it out of ps)")
    p.add_argument("--ui", action="store_true", help="serve the web demo at /")
    p.add_argument("--queue-size", type=int, default=DEFAULTS.queue_size,
                   help="requests waiting for the model; more get 429")
    p.add_argument("--timeout", dest="request_timeout_s", metavar="TIMEOUT", type=float,
                   default=DEFAULTS.request_timeout_s, help="seconds per request before 504")
    p.add_argument("--max-body-mb", type=float, default=DEFAULTS.max_body_bytes / 1024 / 1024)
    p.add_argument("--max-regions", type=int, default=DEFAULTS.max_regions)
    p.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens,
                   help="the most tokens a client may ask for")
    p.add_argument("--max-text-chars", type=int, default=DEFAULTS.max_text_chars,
                   help="characters of question / chat text per request (413 beyond)")
    p.add_argument("--max-prompt-tokens", type=int, default=DEFAULTS.max_prompt_tokens,
                   help="tokens of the rendered prompt (413 beyond)")
    p.add_argument("--max-batch-rows", type=int, default=DEFAULTS.max_batch_rows,
                   help="region rows decoded together across requests (continuous batching; 1: one request "
                   "at a time)")
    p.add_argument("--kv-budget-mb", type=float, default=DEFAULTS.kv_budget_bytes / MIB,
                   help="worst-case KV memory of the running requests; a request beyond it waits")
    p.add_argument("--cache-mb", type=float, default=DEFAULTS.cache_bytes / MIB,
                   help="LRU of encoded images and prompt-prefix K/V, keyed by image content (0: off)")
    p.add_argument("--ignore-eos", action="store_true",
                   help="benchmarks: every answer runs to its max tokens (fixed-length answers)")
    p.set_defaults(func=_run_serve)


def settings_from(args: argparse.Namespace) -> ServeSettings:
    """The settings the flags give: each flag named after a field fills it; the rest are converted."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeSettings) if hasattr(args, f.name)}
    token = args.token_file.read_text().strip() if args.token_file is not None else args.token
    return ServeSettings(**{**given, "token": token, "sam_checkpoint": args.sam,
                            "max_body_bytes": int(args.max_body_mb * MIB),
                            "kv_budget_bytes": int(args.kv_budget_mb * MIB), "cache_bytes": int(args.cache_mb * MIB),
                            "default_new_tokens": min(DEFAULTS.default_new_tokens, args.max_new_tokens)})


def _run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from osprey.inference.providers import ProviderError
    from osprey.serve.api import create_app

    try:
        settings = settings_from(args)
        if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
            print(f"WARNING: serving on {settings.host} without --token: anyone who can reach this port can use "
                  "the model", file=sys.stderr)
        app = create_app(settings)
    except (ValueError, ProviderError) as err:
        raise SystemExit(f"serve: {err}") from None
    if app.state.service.note:
        print(f"NOTE: {app.state.service.note}", file=sys.stderr)
    print(f"serving on http://{args.host}:{args.port}" + (" (demo at /)" if args.ui else ""), file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
