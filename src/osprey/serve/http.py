"""HTTP plumbing: the error envelope, the body limit (ASGI middleware), reading JSON and form bodies.

Every error the server answers is ``{"error": {"type", "message"}}``; :class:`BadRequest` is the
client's mistake (a 4xx whose message names the bad value and what was expected).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


class BadRequest(ValueError):
    """Malformed client input; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str, kind: str = "invalid_request_error",
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


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


async def read_json(request: Request) -> dict:
    """The body as a JSON object."""
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


async def read_json_or_form(request: Request) -> dict:
    """A JSON body, or a multipart form whose ``image`` is a file and ``regions`` a JSON string."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return await read_json(request)
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
