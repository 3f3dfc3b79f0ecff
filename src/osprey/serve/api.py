"""The HTTP API (FastAPI): describe regions, OpenAI-compatible chat, masks from clicks, the demo page.

    app = create_app(ServeSettings(model="tiny"))            # loads the model at start-up
    app = create_app(settings, service=my_service)           # tests: any RegionService

Safety rules, each enforced here: one model worker behind a bounded queue (429 when full, 503 when
shutting down), a deadline per request (504, and the generation stops), a byte limit on bodies
(413, chunked uploads included), pixel and region-count limits, an optional bearer token, and no
file path or URL a client names is ever read or fetched. Bad input gets a 4xx that names the bad
value; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from osprey.inference.providers import ProviderError
from osprey.inference.regions import RegionError
from osprey.masks import pick
from osprey.model.generation import DecodingOptions
from osprey.serve.payloads import (
    BadRequest,
    check_text,
    check_turns,
    decode_image,
    decode_regions,
    parse_chat,
)
from osprey.serve.service import RegionService, load_service, mask_record
from osprey.serve.settings import ServeSettings
from osprey.serve.worker import Cancelled, ModelWorker, QueueFull, ShuttingDown

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
MODES = ("short", "detailed", "category")


# ------------------------------------------------------------------------- request shapes (OpenAPI)


class DescribeRequest(BaseModel):
    """JSON body of ``POST /v1/describe`` (multipart: ``image`` file + the other fields as form fields,
    ``regions`` as a JSON string)."""

    image: str = Field(description="base64 image bytes or a data: URL (never a path or http URL)")
    regions: list[Any] = Field(description="region specs: {'size','counts'} RLE, {'rle': ...}, {'polygons': "
                               "[[x,y,...]]}, {'png': base64}, {'box': [x0,y0,x1,y1], 'segment': bool}, "
                               "{'point': [x,y]} or {'points': [[x,y],...], 'labels': [1,0,...]}")
    mode: str = Field("short", description="short | detailed | category")
    question: str | None = Field(None, description="custom question naming the region as <region1>")
    max_new_tokens: int | None = None


class SegmentRequest(BaseModel):
    """JSON body of ``POST /v1/segment``: one of point(s), box or everything."""

    image: str
    point: list[float] | None = None
    points: list[list[float]] | None = None
    labels: list[int] | None = None
    box: list[float] | None = None
    everything: bool = False
    pick: list[float] | None = Field(None, description="with everything: also return the index of the "
                                     "smallest mask containing this [x, y]")


class ChatCompletionRequest(BaseModel):
    """OpenAI chat completions, plus ``regions``. The first image_url part is the picture; later
    image_url parts are region masks (PNG: alpha channel or non-zero pixels); ``{'type': 'region',
    'region': spec}`` parts carry RLE/polygons/boxes/points. Text names regions ``<region1>``... in
    the order they appear (top-level ``regions`` first)."""

    model: str | None = None
    messages: list[dict[str, Any]]
    regions: list[Any] | None = None
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int = 1


def _body_schema(model: type[BaseModel], multipart: bool = False) -> dict:
    content = {"application/json": {"schema": model.model_json_schema()}}
    if multipart:
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "format": "binary"}, "regions": {"type": "string"},
            "mode": {"type": "string"}, "question": {"type": "string"}}}}
    return {"requestBody": {"required": True, "content": content}}


# ------------------------------------------------------------------------------------- body limit


class BodyLimit:
    """Answer 413 for a body over ``max_bytes``: by Content-Length up front, else while it streams in."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send, declared.decode("latin-1"))
            return
        state = {"received": 0, "answered": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes and not state["answered"]:
                    state["answered"] = True
                    await self._too_large(send, f"more than {state['received']}")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["answered"]:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["answered"]:
                raise
            # we already answered 413 and told the app the client left; its ClientDisconnect is expected

    async def _too_large(self, send, size: str) -> None:
        body = json.dumps({"error": {"type": "request_too_large", "message": f"request body of {size} bytes; at "
                                     f"most {self.max_bytes} bytes are allowed"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------------------- helpers


def _error(status: int, message: str, kind: str = "invalid_request_error", headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(f"the body is not UTF-8 (bad byte at offset {err.start}); expected UTF-8 JSON") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRequest(f"the body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body is a JSON {type(body).__name__}; expected an object")
    return body


async def _form_or_json(request: Request) -> dict:
    """JSON body, or a multipart form whose ``image`` is a file and ``regions`` a JSON string."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await _json_body(request)
    if kind != "multipart/form-data":
        raise BadRequest(f"content type {kind or 'none'!r}; expected application/json or multipart/form-data",
                         status=415)
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as err:
        raise BadRequest(f"malformed multipart body ({err})") from None
    body: dict[str, Any] = {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            if key != "image":
                raise BadRequest(f"file field {key!r}; the only file field is 'image'")
            body["image"] = await value.read()
        else:
            body[key] = value
    if isinstance(body.get("regions"), str):
        try:
            body["regions"] = json.loads(body["regions"])
        except json.JSONDecodeError as err:
            raise BadRequest(f"form field 'regions' is not JSON ({err.msg}); expected a JSON list") from None
    for key in ("max_new_tokens",):
        if isinstance(body.get(key), str):
            try:
                body[key] = int(body[key])
            except ValueError:
                raise BadRequest(f"form field {key!r} is {body[key]!r}; expected an integer") from None
    return body


def _options(settings: ServeSettings, max_new_tokens: Any = None, temperature: Any = None, top_p: Any = None,
             seed: Any = None) -> DecodingOptions:
    tokens = settings.default_new_tokens if max_new_tokens is None else max_new_tokens
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= settings.max_new_tokens:
        raise BadRequest(f"max tokens {tokens!r}; expected an integer in 1..{settings.max_new_tokens}")
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(f"{name} {value!r}; expected a number")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadRequest(f"seed {seed!r}; expected an integer")
    sample = temperature is not None and temperature > 0
    try:
        return DecodingOptions(max_new_tokens=tokens, do_sample=sample,
                               temperature=float(temperature) if sample else 0.2,
                               top_p=float(top_p) if top_p is not None else 1.0, seed=seed)
    except ValueError as err:
        raise BadRequest(str(err)) from None


# ----------------------------------------------------------------------------------------- the app


def create_app(settings: ServeSettings | None = None, *, service: RegionService | None = None,
               service_factory: Callable[[ServeSettings], RegionService] | None = None) -> FastAPI:
    """The API. ``service`` (or ``service_factory(settings)``, default: load ``settings.model``) is
    built before the app is returned, so a bad checkpoint fails at start, not at the first request."""
    settings = settings or ServeSettings()
    if service is None:
        factory = service_factory or (lambda s: load_service(s.model, sam_checkpoint=s.sam_checkpoint,
                                                             sam_type=s.sam_type, max_regions=s.max_regions,
                                                             encode_cache=s.encode_cache, device=s.device,
                                                             dtype=s.dtype))
        service = factory(settings)
    worker = ModelWorker(settings.queue_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        worker.close()

    app = FastAPI(title="Osprey", version="1", lifespan=lifespan,
                  description="Region-level answers from Osprey. Regions are masks; text names them <region1>...")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.settings, app.state.service, app.state.worker = settings, service, worker

    def require_token(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, err: HTTPException):
        return _error(err.status_code, str(err.detail), "http_error", err.headers)

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, err: BadRequest):
        return _error(err.status, str(err))

    def submit(job: Callable[[Any], Any]):
        """Queue ``job(cancel_token)`` on the model worker: (future, token), or 429 / 503."""
        try:
            return worker.submit(job, settings.request_timeout_s)
        except QueueFull as err:
            raise HTTPException(429, f"server busy: {err}; retry later", headers={"Retry-After": "1"}) from None
        except ShuttingDown as err:
            raise HTTPException(503, str(err)) from None

    async def run(job: Callable[[Any], Any]) -> Any:
        """Run ``job(cancel_token)`` on the model worker; map failures to HTTP answers."""
        future, token = submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), settings.request_timeout_s + 1.0)
        except (TimeoutError, Cancelled):
            token.cancel()
            raise HTTPException(504, f"no answer within {settings.request_timeout_s:g} s; try fewer regions or "
                                "tokens") from None
        except ShuttingDown as err:
            raise HTTPException(503, str(err)) from None
        except asyncio.CancelledError:
            token.cancel()  # the client went away: stop generating
            raise
        except (RegionError, ProviderError) as err:
            raise BadRequest(str(err)) from None
        except BadRequest:
            raise
        except ValueError as err:
            raise BadRequest(str(err)) from None

    def _meta() -> dict:
        return {"model": service.model_name, "random_init": service.random_init,
                **({"note": service.note} if service.note else {})}

    # -- health and models ---------------------------------------------------------------------
    @app.get("/healthz", tags=["meta"])
    async def healthz():
        body = {"status": "shutting_down" if worker.closed else "ok", **_meta(),
                "provider": service.provider.name, "device": str(service.predictor._device),
                "dtype": service.dtype,
                "queue": {"waiting": worker.waiting, "size": settings.queue_size, "busy": worker.busy}}
        return JSONResponse(body, status_code=503 if worker.closed else 200)

    @app.get("/v1/models", tags=["openai"], dependencies=[Depends(require_token)])
    async def models():
        return {"object": "list", "data": [{"id": service.model_name, "object": "model", "owned_by": "osprey"}]}

    # -- describe ------------------------------------------------------------------------------
    @app.post("/v1/describe", tags=["regions"], dependencies=[Depends(require_token)],
              openapi_extra=_body_schema(DescribeRequest, multipart=True))
    async def describe(request: Request):
        """One answer per region: the official short / detailed / category prompt or a custom question."""
        start = time.perf_counter()
        body = await _form_or_json(request)
        if "image" not in body:
            raise BadRequest("no 'image'; expected base64 image bytes, a data: URL or a multipart file")
        mode = body.get("mode", "short")
        question = body.get("question")
        if question is not None:
            question = check_text(question, 1, "question")
            if "<region1>" not in question:
                raise BadRequest(f"question {question[:60]!r} does not name <region1> (the region described)")
        elif mode not in MODES:
            raise BadRequest(f"mode {mode!r}; expected one of {', '.join(MODES)} (or give a 'question')")
        options = _options(settings, body.get("max_new_tokens"))
        image = await run_in_threadpool(decode_image, body["image"], settings.max_image_pixels)
        specs = body.get("regions")
        if not specs:
            raise BadRequest("no regions; expected a non-empty 'regions' list")

        def job(token):
            masks = decode_regions(specs, image, service.provider, settings.max_regions)
            token.check()
            answers = service.describe(image, masks, question or mode, options, token.check)
            return masks, answers

        masks, answers = await run(job)
        regions = [{**mask_record(i, m), "answer": a} for i, (m, a) in enumerate(zip(masks, answers, strict=True))]
        return {**_meta(), "size": [image.height, image.width], "mode": None if question else mode,
                "regions": regions, "seconds": round(time.perf_counter() - start, 3)}

    # -- segment -------------------------------------------------------------------------------
    @app.post("/v1/segment", tags=["regions"], dependencies=[Depends(require_token)],
              openapi_extra=_body_schema(SegmentRequest))
    async def segment(request: Request):
        """Masks from a click, a box or "segment everything" (SAM when configured, else GrabCut)."""
        body = await _form_or_json(request)
        if "image" not in body:
            raise BadRequest("no 'image'; expected base64 image bytes or a data: URL")
        prompts = [k for k in ("point", "points", "box") if body.get(k) is not None] + (
            ["everything"] if body.get("everything") else [])
        if len(prompts) != 1:
            raise BadRequest(f"prompts {prompts}; expected exactly one of point, points, box, everything")
        points = [body["point"]] if body.get("point") is not None else body.get("points")
        image = await run_in_threadpool(decode_image, body["image"], settings.max_image_pixels)

        def job(_token):
            try:
                return service.segment(image, points=points, labels=body.get("labels"), box=body.get("box"),
                                       everything=bool(body.get("everything")))
            except (TypeError, ValueError) as err:
                raise BadRequest(f"bad prompt: {err}") from None

        masks = await run(job)
        masks = [m for m in masks if m.any()][: max(settings.max_regions, 64)]
        picked = None
        if body.get("pick") is not None:
            try:
                x, y = (float(v) for v in body["pick"])
            except (TypeError, ValueError):
                raise BadRequest(f"pick {body['pick']!r}; expected [x, y]") from None
            picked = pick(masks, x, y)
        return {"provider": service.provider.name, "size": [image.height, image.width],
                "masks": [mask_record(i, m) for i, m in enumerate(masks)], "picked": picked}

    # -- chat completions ----------------------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["openai"], dependencies=[Depends(require_token)],
              openapi_extra=_body_schema(ChatCompletionRequest))
    async def chat_completions(request: Request):
        """OpenAI-compatible chat about an image's regions; ``stream: true`` answers with SSE chunks."""
        body = await _json_body(request)
        if body.get("n", 1) != 1:
            raise BadRequest(f"n={body.get('n')!r}; this server returns exactly one choice (n=1)")
        options = _options(settings, body.get("max_completion_tokens", body.get("max_tokens")),
                           body.get("temperature"), body.get("top_p"), body.get("seed"))
        parsed = await run_in_threadpool(parse_chat, body, settings.max_messages, settings.max_image_pixels)
        if len(parsed.region_specs) > settings.max_regions:
            raise BadRequest(f"{len(parsed.region_specs)} regions given; at most {settings.max_regions} per request "
                             "are allowed")
        count = len(parsed.region_specs)
        check_turns(parsed.history, count)
        check_text(parsed.question, count, "the last user message")
        if not parsed.question.strip():
            raise BadRequest("the last user message has no text; expected a question")
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model_name = service.model_name

        def masks_of():
            if not parsed.region_specs:
                return np.zeros((0, parsed.image.height, parsed.image.width), dtype=bool)
            return decode_regions(parsed.region_specs, parsed.image, service.provider, settings.max_regions)

        if not body.get("stream"):
            def job(token):
                masks = masks_of()
                answer = service.answer(parsed.image, masks, parsed.history, parsed.question, options, token.check)
                return answer, service.prompt_tokens(parsed.history, parsed.question, masks)

            answer, prompt_tokens = await run(job)
            completion_tokens = len(service.predictor.tokenizer.encode(answer)) if answer else 0
            return {"id": ident, "object": "chat.completion", "created": created, "model": model_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                 "finish_reason": "length" if completion_tokens >= options.max_new_tokens else "stop"}],
                    "usage": {"completion_tokens": completion_tokens, "prompt_tokens": prompt_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                    "osprey": {**_meta(), "regions": count}}
        return await _stream(ident, created, model_name, masks_of, parsed, options)

    async def _stream(ident, created, model_name, masks_of, parsed, options) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def post(item) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone (server stopping): nobody to tell
                loop.call_soon_threadsafe(events.put_nowait, item)

        def job(token):
            masks = masks_of()
            for piece in service.stream(parsed.image, masks, parsed.history, parsed.question, options):
                token.check()
                post(("piece", piece))

        future, token = submit(job)
        future.add_done_callback(lambda f: post(("done", f)))

        def chunk(delta: dict, finish: str | None = None) -> str:
            payload = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def sse():
            try:
                yield chunk({"role": "assistant", "content": ""})
                while True:
                    kind, value = await events.get()
                    if kind == "piece":
                        yield chunk({"content": value})
                        continue
                    if value.cancelled() or value.exception() is None:
                        yield chunk({}, "stop")
                    else:
                        err = value.exception()
                        status = 400 if isinstance(err, BadRequest | ValueError) else (
                            504 if isinstance(err, Cancelled) else 500)
                        if status == 500:
                            log.error("stream failed", exc_info=err)
                        message = str(err) if status != 500 else "internal error while generating"
                        yield f"data: {json.dumps({'error': {'message': message, 'code': status}})}\n\n"
                    yield "data: [DONE]\n\n"
                    return
            finally:
                token.cancel()

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- bundled examples and the demo page ----------------------------------------------------
    examples = {p.stem: p for p in sorted(EXAMPLES.glob("*.png"))}

    @app.get("/v1/examples", tags=["demo"])
    async def list_examples():
        return {"examples": sorted(examples)}

    @app.get("/v1/examples/{name}", tags=["demo"])
    async def example(name: str):
        """A bundled example by name (a fixed list: names never reach the file system as paths)."""
        if name not in examples:
            raise HTTPException(404, f"no example {name!r}; expected one of {sorted(examples)}")
        path = examples[name]
        with Image.open(path) as img:
            size = [img.height, img.width]
        meta = path.with_suffix(".json")
        regions = json.loads(meta.read_text()).get("regions", []) if meta.exists() else []
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return {"name": name, "size": size, "image": f"data:image/png;base64,{data}",
                "regions": [r.get("segmentation", r) for r in regions]}

    if settings.ui:
        from osprey.serve.ui import page

        @app.get("/", include_in_schema=False)
        async def index():
            return HTMLResponse(page(token_required=settings.token is not None, note=service.note))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    return app
