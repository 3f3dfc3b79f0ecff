"""Continuous batching through the HTTP API: /healthz figures, the flags, fixed-length answers,
concurrent streams beside plain requests."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_helpers import b64, data_url, running

from osprey.serve.api import create_app
from osprey.serve.cli import register, settings_from
from osprey.serve.service import RegionService
from osprey.serve.settings import ServeSettings


def service_like(base: RegionService, **kwargs) -> RegionService:
    return RegionService(base.predictor, base.provider, base.model_name, base.random_init, **kwargs)


def test_healthz_shows_the_batch_and_the_cache(tiny_service, picture) -> None:
    service = service_like(tiny_service)
    body = {"image": b64(picture), "regions": [{"box": [10, 10, 30, 30]}], "max_new_tokens": 2}
    with TestClient(create_app(ServeSettings(), service=service)) as client:
        before = client.get("/healthz").json()
        assert before["cache"]["bytes"] == 0 and before["cache"]["image_hit_rate"] is None
        assert before["batch"]["max_batch_rows"] == 16 and before["queue"]["running"] == 0
        assert client.post("/v1/describe", json=body).status_code == 200
        assert client.post("/v1/describe", json={**body, "regions": [{"box": [0, 0, 20, 20]}]}).status_code == 200
        health = client.get("/healthz").json()
    cache, batch = health["cache"], health["batch"]
    assert (cache["image_hits"], cache["image_misses"], cache["image_hit_rate"]) == (1, 1, 0.5)
    assert cache["prefix_hits"] == 1 and 0 < cache["bytes"] <= cache["max_bytes"] == 256 * 1024 * 1024
    assert batch["running_rows"] == 0 and batch["decode_steps"] >= 2 and batch["kv_reserved_bytes"] == 0


def test_ignore_eos_gives_fixed_length_answers(tiny_service, picture) -> None:
    service = service_like(tiny_service, ignore_eos=True)
    with TestClient(create_app(ServeSettings(), service=service)) as client:
        response = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                                       {"type": "text", "text": "What is <region1>?"}]}],
            "regions": [{"box": [10, 10, 30, 30]}], "max_tokens": 7})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 7
    assert response.json()["choices"][0]["finish_reason"] == "length"


def test_serve_flags_fill_the_settings() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--max-batch-rows", "4", "--kv-budget-mb", "2", "--cache-mb", "0",
                              "--ignore-eos"])
    settings = settings_from(args)
    assert (settings.max_batch_rows, settings.kv_budget_bytes, settings.cache_bytes, settings.ignore_eos) == (
        4, 2 * 1024 * 1024, 0, True)
    defaults = settings_from(parser.parse_args(["serve"]))
    assert (defaults.max_batch_rows, defaults.cache_bytes, defaults.ignore_eos) == (16, 256 * 1024 * 1024, False)
    for name, value in (("max_batch_rows", 0), ("kv_budget_bytes", 0), ("cache_bytes", -1)):
        with pytest.raises(ValueError, match=f"{name}={value}"):
            ServeSettings(**{name: value})


def test_streams_and_plain_requests_run_together(tiny_service, picture) -> None:
    """Several streams and plain requests at once through a real server: each gets its full answer,
    and each stream's pieces are the plain answer of the same request."""
    service = service_like(tiny_service, ignore_eos=True)
    chat = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                                      {"type": "text", "text": "What is <region1>?"}]}],
            "regions": [{"box": [10, 10, 30, 30]}], "max_tokens": 6}
    with running(create_app(ServeSettings(), service=service)) as url:
        plain = httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()
        text = plain["choices"][0]["message"]["content"]

        def stream(_):
            pieces = []
            with httpx.stream("POST", f"{url}/v1/chat/completions", json={**chat, "stream": True}, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
            return "".join(pieces)

        def ask(_):
            return httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=60).json()["choices"][0]["message"]

        with ThreadPoolExecutor(6) as pool:
            streamed = list(pool.map(stream, range(3)))
            asked = list(pool.map(ask, range(3)))
    assert streamed == [text] * 3 and [a["content"] for a in asked] == [text] * 3
