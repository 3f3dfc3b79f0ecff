"""A real uvicorn server in a thread: concurrent clients, a full queue (429), deadlines (504), shutdown (503)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serve_helpers import b64, running

from osprey.serve.api import create_app
from osprey.serve.service import RegionService
from osprey.serve.settings import ServeSettings


class GatedService(RegionService):
    """The tiny service, but every describe waits until the test opens the gate."""

    def __init__(self, base: RegionService, max_batch_rows: int = 16) -> None:
        super().__init__(base.predictor, base.provider, base.model_name, base.random_init,
                         max_batch_rows=max_batch_rows)
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def describe(self, image, masks, question, options, cancel, **style):  # style: the demo style's prefix
        self.started.release()
        while not self.gate.wait(0.01):
            cancel()  # the deadline check a real generation makes once per token
        return super().describe(image, masks, question, options, cancel, **style)


def _describe(url: str, picture, **extra) -> httpx.Response:
    body = {"image": b64(picture), "regions": [{"box": [10, 10, 30, 30]}], "max_new_tokens": 3, **extra}
    return httpx.post(f"{url}/v1/describe", json=body, timeout=30)


def test_concurrent_clients_all_get_answers(tiny_service, picture) -> None:
    app = create_app(ServeSettings(queue_size=8, default_new_tokens=3), service=tiny_service)
    with running(app) as url, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: _describe(url, picture), range(6)))
        chat = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(picture)}},
                {"type": "text", "text": "What is <region1>?"}]}],
            "regions": [{"point": [20, 20]}], "max_tokens": 3, "stream": True})
    assert [r.status_code for r in responses] == [200] * 6
    answers = {r.json()["regions"][0]["answer"] for r in responses}
    assert len(answers) == 1  # greedy decoding: every client got the same answer
    assert chat.status_code == 200 and chat.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("rows", [1, 2])
def test_a_full_queue_answers_429_and_recovers(tiny_service, picture, rows) -> None:
    service = GatedService(tiny_service, max_batch_rows=rows)  # one request thread per batch row
    app = create_app(ServeSettings(queue_size=2, default_new_tokens=3), service=service)
    with running(app) as url, ThreadPoolExecutor(2 + rows) as pool:
        first = [pool.submit(_describe, url, picture) for _ in range(rows)]
        for _ in range(rows):
            assert service.started.acquire(timeout=20)  # every request thread is busy
        queued = [pool.submit(_describe, url, picture) for _ in range(2)]
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/healthz").json()["queue"]["waiting"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        rejected = _describe(url, picture)
        assert rejected.status_code == 429 and rejected.headers["retry-after"] == "1"
        assert "busy" in rejected.json()["error"]["message"]
        service.gate.set()
        assert [f.result().status_code for f in first + queued] == [200] * (rows + 2)
        assert _describe(url, picture).status_code == 200


def test_deadline_gives_504_and_the_worker_moves_on(tiny_service, picture) -> None:
    service = GatedService(tiny_service)
    app = create_app(ServeSettings(request_timeout_s=0.5, default_new_tokens=3), service=service)
    with running(app) as url:
        slow = _describe(url, picture)
        assert slow.status_code == 504 and "0.5 s" in slow.json()["error"]["message"]
        service.gate.set()
        assert _describe(url, picture).status_code == 200


def test_shutdown_answers_503(tiny_service, picture) -> None:
    app = create_app(ServeSettings(default_new_tokens=3), service=tiny_service)
    with running(app) as url:
        assert _describe(url, picture).status_code == 200
        app.state.worker.close()
        assert _describe(url, picture).status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 503


@pytest.mark.parametrize("host", ["127.0.0.1"])
def test_binds_loopback_by_default(host) -> None:
    assert ServeSettings().host == host
