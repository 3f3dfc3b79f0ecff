"""HTTP plumbing: the error envelope, the body limit (ASGI middleware), reading JSON and form bodies.

Every error the server answers, FastAPI's and Starlette's own 404/405/422 included, is

    {"error": {"message": ..., "type": ..., "param": <the field, or null>, "code": <short name or null>}}

(:func:`install_error_handlers`). :class:`BadRequest` is the client's mistake: a 4xx whose message
names the bad field and what was expected.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32  # nesting of objects/arrays in a body (a region's polygons need 3)
MAX_INT_DIGITS = 20  # longer integers are no integer any field accepts (seed < 2**63 has 19)
TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 413: "request_too_large", 415: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error", 503: "server_error", 504: "timeout_error"}


class BadRequest(ValueError):
    """Malformed client input; ``status`` is the HTTP status to answer with, ``param`` the field."""

    def __init__(self, message: str, status: int = 400, *, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def envelope(status: int, message: str, kind: str | None = None, param: str | None = None,
             code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind or TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, kind: str | None = None, headers: dict | None = None, *,
                   param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(envelope(status, message, kind, param, code), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error in the one envelope: ours, Starlette's route 404/405, FastAPI's 422, and (never
    expected) any other exception as a 500 without internals."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException):
        message = str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif err.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(err.status_code, message, headers=getattr(err, "headers", None),
                              code={401: "invalid_token", 404: "not_found", 405: "method_not_allowed",
                                    429: "busy", 504: "deadline_exceeded"}.get(err.status_code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError):
        first = (err.errors() or [{}])[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return error_response(422, f"{where or 'request'}: {first.get('msg', 'invalid')}", param=where)

    @app.exception_handler(BadRequest)
    async def _bad_request(_request: Request, err: BadRequest):
        return error_response(err.status, str(err), param=err.param, code=err.code)

    @app.exception_handler(Exception)
    async def _internal(_request: Request, err: Exception):
        log.error("internal error", exc_info=err)
        return error_response(500, "internal error", "server_error")


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
            await self._too_large(send, declared.decode("latin-1")[:24])
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
        body = json.dumps(envelope(413, f"request body of {size} bytes; at most {self.max_bytes} bytes are "
                                   "allowed", code="body_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------ JSON


class HugeInt:
    """A JSON integer of more than :data:`MAX_INT_DIGITS` digits: no field accepts it, and parsing it
    (quadratic in Python) is never done. It is neither ``int`` nor ``float``, so every field check
    refuses it with the field's own message."""

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


def _int(text: str) -> int | HugeInt:
    return int(text) if len(text) <= MAX_INT_DIGITS else HugeInt(text)


def _constant(name: str) -> float:
    raise BadRequest(f"the JSON holds {name}; expected finite numbers only (NaN and Infinity are not JSON)")


def loads(text: str, what: str = "the body") -> Any:
    """Parse JSON text, then check it is at most :data:`MAX_JSON_DEPTH` deep and that every string
    is valid Unicode (no lone surrogate such as ``"\\ud800"``)."""
    try:
        value = json.loads(text, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as err:
        raise BadRequest(f"{what} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply; expected at most {MAX_JSON_DEPTH} levels") from None
    check_tree(value, what)
    return value


def check_tree(value: Any, what: str = "the body") -> None:
    """Depth and Unicode checks over a parsed JSON value (iterative: no recursion on hostile input)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_unicode(item, path or what)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadRequest(f"{path or what} is {item!r}; expected a finite number", param=path or None)
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise BadRequest(f"{path or what} is nested more than {MAX_JSON_DEPTH} levels deep; expected "
                                 "a flatter body", param=path or None)
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_unicode(key, f"a key of {path or what}")
                    stack.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                stack.extend((child, f"{path}[{k}]", depth + 1) for k, child in enumerate(item))


def _check_unicode(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadRequest(f"{where} holds a lone surrogate U+{ord(text[err.start]):04X} at character "
                         f"{err.start}; expected valid Unicode text", param=where.split(" of ")[-1]) from None


async def read_json(request: Request) -> dict:
    """The body as a JSON object."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(f"the body is not UTF-8 (bad byte at offset {err.start}); expected UTF-8 JSON") from None
    body = loads(text)
    if not isinstance(body, dict):
        raise BadRequest(f"the body is a JSON {type(body).__name__}; expected an object")
    return body


async def read_json_or_form(request: Request) -> dict:
    """A JSON body, or a multipart form whose ``image`` is a file and ``regions`` a JSON string."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await read_json(request)
    if kind != "multipart/form-data":
        raise BadRequest(f"content type {kind[:60] or 'none'!r}; expected application/json or multipart/form-data",
                         status=415, param="content-type")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except Exception as err:
        raise BadRequest(f"malformed multipart body ({str(err)[:200]})") from None
    body: dict[str, Any] = {}
    for key, value in form.multi_items():
        if hasattr(value, "read"):
            if key != "image":
                raise BadRequest(f"file field {key[:40]!r}; the only file field is 'image'", param=key[:40])
            body["image"] = await value.read()
        else:
            body[key] = value
    check_tree({k: v for k, v in body.items() if isinstance(v, str)}, "the form")
    if isinstance(body.get("regions"), str):
        body["regions"] = loads(body["regions"], "form field 'regions'")
    for key in ("max_new_tokens",):
        if isinstance(body.get(key), str):
            text = body[key].strip()
            if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= MAX_INT_DIGITS):
                raise BadRequest(f"form field {key!r} is {body[key][:40]!r}; expected an integer", param=key)
            body[key] = int(text)
    return body
