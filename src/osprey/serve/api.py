"""The HTTP API (FastAPI): describe regions, OpenAI-compatible chat, masks from clicks, the demo page.

    app = create_app(ServeSettings(model="tiny"))            # loads the model at start-up
    app = create_app(settings, service=my_service)           # tests: any RegionService

Each route decodes (:mod:`osprey.serve.payloads`: the body into a frozen request), runs the model
part on the one worker (:mod:`osprey.serve.worker`, :mod:`osprey.serve.service`) and encodes the
answer (:mod:`osprey.serve.responses`).

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
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from osprey.inference.demo import DemoStyle, clicks
from osprey.inference.providers import ProviderError
from osprey.inference.regions import RegionError
from osprey.masks import pick
from osprey.model.loading import generation_defaults
from osprey.serve import responses
from osprey.serve.decoding import decode_regions, upscale
from osprey.serve.demo_style import style_for
from osprey.serve.http import BadRequest, BodyLimit, install_error_handlers, read_json, read_json_or_form
from osprey.serve.payloads import (
    ChatRequest,
    DescribeRequest,
    SegmentRequest,
    parse_chat,
    parse_describe,
    parse_segment,
    request_schema,
)
from osprey.serve.service import RegionService, load_service
from osprey.serve.settings import ServeSettings
from osprey.serve.worker import Cancelled, CancelToken, ModelWorker, QueueFull, ShuttingDown

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def create_app(settings: ServeSettings | None = None, *, service: RegionService | None = None,
               service_factory: Callable[[ServeSettings], RegionService] | None = None) -> FastAPI:
    """The API. ``service`` (or ``service_factory(settings)``, default: load ``settings.model``) is
    built before the app is returned, so a bad checkpoint fails at start, not at the first request."""
    settings = settings or ServeSettings()
    if service is None:
        service = (service_factory or _load)(settings)
    worker = ModelWorker(settings.queue_size, concurrency=service.max_batch_rows)
    jobs = _Jobs(worker, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        worker.close()

    app = FastAPI(title="Osprey", version="1", lifespan=lifespan, redirect_slashes=False,
                  description="Region-level answers from Osprey. Regions are masks; text names them <region1>...")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.state.settings, app.state.service, app.state.worker = settings, service, worker
    guarded = [Depends(_token_check(settings.token))]
    install_error_handlers(app)
    model_names = {service.model_name, Path(service.model_name).name, "osprey"}
    sampling = generation_defaults(service.predictor.model)  # the folder's generation_config.json, if any

    # -- health and models ---------------------------------------------------------------------
    @app.get("/healthz", tags=["meta"])
    async def healthz():
        body = {"status": "shutting_down" if worker.closed else "ok", **responses.meta(service),
                "provider": service.provider.name, "device": str(service.predictor.device), "dtype": service.dtype,
                "queue": {"waiting": worker.waiting, "size": settings.queue_size, "busy": worker.busy,
                          "running": worker.running}, **service.stats()}
        return JSONResponse(body, status_code=503 if worker.closed else 200)

    @app.get("/v1/models", tags=["openai"], dependencies=guarded)
    async def models():
        return {"object": "list", "data": [{"id": service.model_name, "object": "model", "owned_by": "osprey"}]}

    # -- regions -------------------------------------------------------------------------------
    @app.post("/v1/describe", tags=["regions"], dependencies=guarded,
              openapi_extra=request_schema(DescribeRequest, multipart=True))
    async def describe(request: Request):
        """One answer per region: the official short / detailed / category prompt or a custom question."""
        start = time.perf_counter()
        req = await run_in_threadpool(parse_describe, await read_json_or_form(request), settings)
        style = style_for(service, req.demo_style)
        masks, answers = await jobs.run(lambda token: _describe(service, settings, req, style, token))
        return {**responses.describe_response(service, req, masks, answers, time.perf_counter() - start),
                "demo_style": style.name}

    @app.post("/v1/segment", tags=["regions"], dependencies=guarded, openapi_extra=request_schema(SegmentRequest))
    async def segment(request: Request):
        """Masks from a click, a box or "segment everything" (SAM when configured, else GrabCut)."""
        req = await run_in_threadpool(parse_segment, await read_json_or_form(request), settings)
        style = style_for(service, req.demo_style)
        records, picked = await jobs.run(lambda token: _segment(service, settings, req, style, token))
        return {**responses.segment_response(service, req, records, picked), "demo_style": style.name}

    # -- chat completions ----------------------------------------------------------------------
    @app.post("/v1/chat/completions", tags=["openai"], dependencies=guarded,
              openapi_extra=request_schema(ChatRequest))
    async def chat_completions(request: Request):
        """OpenAI-compatible chat about an image's regions; ``stream: true`` answers with SSE chunks."""
        req = await run_in_threadpool(parse_chat, await read_json(request), settings, model_names, sampling)
        completion, style = responses.Completion(service.model_name), style_for(service, req.demo_style)
        if req.stream:
            return await _stream(jobs, completion, lambda token: _chat_pieces(service, settings, req, style, token))
        answer = await jobs.run(lambda token: _chat(service, settings, req, style, token))
        return completion.response(answer, {**responses.meta(service), "regions": len(req.regions),
                                            "demo_style": style.name})

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
        return _example(name, examples[name])

    if settings.ui:
        from osprey.serve.ui import page

        @app.get("/", include_in_schema=False)
        async def index():
            return HTMLResponse(page(token_required=settings.token is not None, note=service.note))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    return app


def _load(settings: ServeSettings) -> RegionService:
    return load_service(settings.model, sam_checkpoint=settings.sam_checkpoint, sam_type=settings.sam_type,
                        max_regions=settings.max_regions, cache_bytes=settings.cache_bytes,
                        device=settings.device, dtype=settings.dtype, max_prompt_tokens=settings.max_prompt_tokens,
                        quantize=settings.quantize, max_batch_rows=settings.max_batch_rows,
                        kv_budget_bytes=settings.kv_budget_bytes, ignore_eos=settings.ignore_eos)


def _token_check(token: str | None) -> Callable[[Request], None]:
    """A dependency that refuses a /v1 call without ``Authorization: Bearer <token>`` (when one is set)."""
    def require_token(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return require_token


# ------------------------------------------------------------------------- jobs on the model worker


class _Jobs:
    """Queue ``job(cancel_token)`` on the model worker and map what goes wrong to HTTP answers."""

    def __init__(self, worker: ModelWorker, settings: ServeSettings) -> None:
        self.worker = worker
        self.timeout_s = settings.request_timeout_s

    def submit(self, job: Callable[[CancelToken], Any]) -> tuple[Future, CancelToken]:
        """(future, token), or 429 / 503."""
        try:
            return self.worker.submit(job, self.timeout_s)
        except QueueFull as err:
            raise HTTPException(429, f"server busy: {err}; retry later", headers={"Retry-After": "1"}) from None
        except ShuttingDown as err:
            raise HTTPException(503, str(err)) from None

    async def run(self, job: Callable[[CancelToken], Any]) -> Any:
        """The job's result: 504 past the deadline, 503 at shutdown, 400 for bad regions or prompts."""
        future, token = self.submit(job)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s + 1.0)
        except (TimeoutError, Cancelled):
            token.cancel()
            raise HTTPException(504, f"no answer within {self.timeout_s:g} s; try fewer regions or "
                                "tokens") from None
        except ShuttingDown as err:
            raise HTTPException(503, str(err)) from None
        except asyncio.CancelledError:
            token.cancel()  # the client went away: stop generating
            raise
        except (RegionError, ProviderError) as err:
            raise BadRequest(str(err), param="regions") from None
        except BadRequest:
            raise
        except ValueError as err:
            raise BadRequest(str(err)) from None


def _regions(service: RegionService, settings: ServeSettings, req: DescribeRequest | ChatRequest,
             style: DemoStyle, token: CancelToken) -> tuple[np.ndarray, Image.Image, np.ndarray]:
    """(masks at the image's size, and the image and masks as the model gets them under ``style``)."""
    with clicks(service.provider, style):
        masks = decode_regions(req.regions, req.image, service.provider, settings.max_regions, token.check,
                               settings.provider_pixels)
    token.check()
    return (masks, *style.inputs(req.image, masks))


def _describe(service: RegionService, settings: ServeSettings, req: DescribeRequest, style: DemoStyle,
              token: CancelToken):
    masks, image, inputs = _regions(service, settings, req, style, token)
    answers = service.describe(image, inputs, req.question, req.options, lambda: token.cancelled, prefix=style.prefix)
    return masks, [style.answer(a) for a in answers]


def _segment(service: RegionService, settings: ServeSettings, req: SegmentRequest, style: DemoStyle,
             token: CancelToken):
    """(mask records at the image's size, picked index); masks are scaled up and encoded one at a time."""
    try:
        with clicks(service.provider, style):
            masks, scale = service.segment(req.image, points=req.points, labels=req.labels, box=req.box,
                                           everything=req.everything, provider_pixels=settings.provider_pixels,
                                           keep=max(settings.max_regions, 64))
    except (TypeError, ValueError) as err:
        raise BadRequest(f"bad prompt: {err}") from None
    masks = [m for m in masks if np.asarray(m).any()]
    picked = None if req.pick is None else pick(masks, req.pick[0] * scale, req.pick[1] * scale)
    records = []
    for index, mask in enumerate(masks):
        token.check()
        full = mask if scale == 1.0 else upscale(mask, req.image.height, req.image.width)
        records.append(responses.mask_record(index, full))
    return records, picked


def _chat(service: RegionService, settings: ServeSettings, req: ChatRequest, style: DemoStyle, token: CancelToken):
    _, image, masks = _regions(service, settings, req, style, token)
    return style.answer(service.answer(image, masks, req.history, req.question, req.options, lambda: token.cancelled,
                                       prefix=style.prefix))


def _chat_pieces(service: RegionService, settings: ServeSettings, req: ChatRequest, style: DemoStyle,
                 token: CancelToken):
    _, image, masks = _regions(service, settings, req, style, token)
    pieces = service.stream(image, masks, req.history, req.question, req.options, lambda: token.cancelled,
                            prefix=style.prefix)
    if style.postprocess:  # post-processing needs the whole answer: it goes out as one piece
        pieces = iter([style.answer("".join(pieces))])
    for piece in pieces:
        token.check()
        yield piece
    token.check()  # cut short by the deadline (between prefill chunks or steps): an SSE 504, not a "stop"


def _failure(err: BaseException) -> tuple[int, str]:
    """(HTTP status, message) of a job's exception, for an SSE error event."""
    if isinstance(err, BadRequest):
        return err.status, str(err)
    if isinstance(err, RegionError | ProviderError | ValueError):
        return 400, str(err)
    if isinstance(err, Cancelled):
        return 504, "no answer within the deadline; the generation was stopped"
    log.error("stream failed", exc_info=err)
    return 500, "internal error while generating"


async def _stream(jobs: _Jobs, completion: responses.Completion, pieces: Callable[[CancelToken], Any]):
    """Run ``pieces(token)`` on the worker and send each piece as an SSE chunk as it comes.

    Nothing is sent until the job has produced its first piece (or ended): everything that can fail
    before the first token (regions, prompt length, the model's first step) is an ordinary HTTP
    error, never a 200 whose stream then says it failed."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def post(item) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server stopping): nobody to tell
            loop.call_soon_threadsafe(events.put_nowait, item)

    def job(token: CancelToken) -> None:
        for piece in pieces(token):
            post(("piece", piece))

    future, token = jobs.submit(job)
    future.add_done_callback(lambda f: post(("done", f)))
    try:
        first = await asyncio.wait_for(events.get(), jobs.timeout_s + 1.0)
    except TimeoutError:
        token.cancel()
        raise HTTPException(504, f"no answer within {jobs.timeout_s:g} s; try fewer regions or tokens") from None
    except asyncio.CancelledError:
        token.cancel()
        raise
    if first[0] == "done" and not first[1].cancelled() and first[1].exception() is not None:
        token.cancel()
        err = first[1].exception()
        if isinstance(err, Cancelled):
            raise HTTPException(504, f"no answer within {jobs.timeout_s:g} s; try fewer regions or tokens")
        if isinstance(err, ShuttingDown):
            raise HTTPException(503, str(err))
        status, message = _failure(err)
        if status == 500:
            raise err
        raise BadRequest(message, status)

    async def sse():
        try:
            yield completion.chunk({"role": "assistant", "content": ""})
            kind, value = first
            while True:
                if kind == "piece":
                    yield completion.chunk({"content": value})
                    kind, value = await events.get()
                    continue
                if value.cancelled() or value.exception() is None:
                    yield completion.chunk({}, "stop")
                else:
                    yield responses.sse_error(*reversed(_failure(value.exception())))
                yield responses.SSE_DONE
                return
        finally:
            token.cancel()

    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _example(name: str, path: Path) -> dict:
    with Image.open(path) as img:
        size = [img.height, img.width]
    meta = path.with_suffix(".json")
    regions = json.loads(meta.read_text()).get("regions", []) if meta.exists() else []
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": name, "size": size, "image": f"data:image/png;base64,{data}",
            "regions": [r.get("segmentation", r) for r in regions]}
