"""The HTTP API in-process (FastAPI TestClient) on the tiny random-init model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_helpers import b64, data_url, png_bytes

from osprey.masks import decode_rle, encode_rle
from osprey.serve.api import create_app
from osprey.serve.settings import ServeSettings


@pytest.fixture(scope="module")
def client(tiny_service):
    settings = ServeSettings(default_new_tokens=4, max_new_tokens=16, max_regions=8, max_body_bytes=200_000)
    with TestClient(create_app(settings, service=tiny_service)) as c:
        yield c


def chat_body(picture, text="What is <region1>?", **extra):
    return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                                       {"type": "text", "text": text}]}], "max_tokens": 4, **extra}


def error_of(response) -> str:
    return response.json()["error"]["message"]


def test_healthz_and_openapi(client) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["random_init"] is True and "RANDOM" in health["note"]
    assert health["dtype"] == "float32" and health["device"] in ("cpu", "cuda:0")
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/describe", "/v1/chat/completions", "/v1/segment", "/healthz"} <= set(paths)
    schema = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "messages" in schema["properties"]


def test_describe_every_region_kind(client, picture) -> None:
    square = np.zeros(picture.shape[:2], bool)
    square[10:30, 10:30] = True
    alpha = np.zeros((*picture.shape[:2], 4), np.uint8)
    alpha[5:40, 45:55, 3] = 255  # only the alpha channel marks the region
    regions = [encode_rle(square), {"rle": encode_rle(square)}, {"polygons": [[10, 10, 30, 10, 30, 30, 10, 30]]},
               {"png": b64(alpha)}, {"box": [45, 5, 55, 40]}, {"point": [20, 20]}]
    response = client.post("/v1/describe", json={"image": b64(picture), "regions": regions, "mode": "detailed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["random_init"] is True and body["size"] == [48, 64] and len(body["regions"]) == 6
    assert all(isinstance(r["answer"], str) for r in body["regions"])
    assert body["regions"][3]["area"] == 35 * 10
    clicked = decode_rle(body["regions"][5]["rle"], 48, 64)
    assert (clicked & square).sum() / (clicked | square).sum() > 0.9  # GrabCut found the red square


def test_describe_multipart_and_custom_question(client, picture) -> None:
    response = client.post("/v1/describe", files={"image": ("p.png", png_bytes(picture), "image/png")},
                           data={"regions": json.dumps([{"box": [0, 0, 10, 10]}]),
                                 "question": "Is <region1> red?", "max_new_tokens": "3"})
    assert response.status_code == 200, response.text
    assert response.json()["mode"] is None and len(response.json()["regions"]) == 1


def test_segment_point_box_everything(client, picture) -> None:
    point = client.post("/v1/segment", json={"image": b64(picture), "point": [50, 20]}).json()
    mask = decode_rle(point["masks"][0]["rle"], 48, 64)
    assert point["provider"] == "grabcut" and mask[20, 50] and not mask[20, 20]
    everything = client.post("/v1/segment", json={"image": b64(picture), "everything": True, "pick": [20, 20]}).json()
    areas = [m["area"] for m in everything["masks"]]
    assert areas == sorted(areas, reverse=True) and everything["picked"] is not None
    assert decode_rle(everything["masks"][everything["picked"]]["rle"], 48, 64)[20, 20]
    both = client.post("/v1/segment", json={"image": b64(picture), "point": [1, 1], "box": [0, 0, 5, 5]})
    assert both.status_code == 400 and "exactly one" in error_of(both)


def test_chat_completion_openai_shape(client, picture) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(picture, regions=[{"box": [10, 10, 30, 30]}]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(body["choices"][0]["message"]["content"], str) and body["osprey"]["regions"] == 1
    usage = body["usage"]  # the prompt counts every token the model reads: text, image and region slots
    assert usage["prompt_tokens"] > 20 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_history_region_parts_and_mask_images(client, picture) -> None:
    mask = np.zeros(picture.shape[:2], np.uint8)
    mask[10:30, 10:30] = 255
    messages = [
        {"role": "system", "content": "ignored"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(picture)}},
                                     {"type": "image_url", "image_url": {"url": data_url(mask)}},
                                     {"type": "region", "region": {"box": [45, 5, 55, 40]}},
                                     {"type": "text", "text": "Compare <region1> and <region2>."}]},
        {"role": "assistant", "content": "They differ."},
        {"role": "user", "content": "Which is bigger, <region1> or <region2>?"},
    ]
    response = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 3})
    assert response.status_code == 200, response.text
    assert response.json()["osprey"]["regions"] == 2


def test_chat_streaming_sends_openai_chunks(client, picture) -> None:
    with client.stream("POST", "/v1/chat/completions",
                       json=chat_body(picture, stream=True, regions=[{"box": [10, 10, 30, 30]}])) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    plain = client.post("/v1/chat/completions", json=chat_body(picture, regions=[{"box": [10, 10, 30, 30]}]))
    assert text == plain.json()["choices"][0]["message"]["content"]  # greedy: same answer either way


@pytest.mark.parametrize(("patch", "status", "words"), [
    ({"image": "bm90IGFuIGltYWdl"}, 400, "not a readable image"),
    ({"image": "/etc/passwd"}, 400, "never reads paths"),
    ({"image": "https://example.com/x.png"}, 400, "never fetches URLs"),
    ({"image": "%%%not base64"}, 400, "not valid base64"),
    ({"regions": [{"size": [10, 10], "counts": [100]}]}, 400, "expected [48, 64]"),
    ({"regions": [{"size": [48, 64], "counts": [48 * 64]}]}, 400, "empty"),
    ({"regions": [{"box": [1, 1, 5, 5]}] * 100}, 400, "at most 8"),
    ({"regions": ["/etc/hosts"]}, 400, "never reads paths"),
    ({"regions": [{"path": "/etc/hosts"}]}, 400, "never reads paths"),
    ({"regions": [{"png": "data:image/png;base64," + b64(np.zeros((5, 5), np.uint8))}]}, 400, "expected the image's"),
    ({"regions": []}, 400, "no regions"),
    ({"mode": "poem"}, 400, "expected one of short"),
    ({"question": "What is <mask><pos>?"}, 400, "'<mask>'"),
    ({"max_new_tokens": 10_000}, 400, "1..16"),
])
def test_describe_rejects_bad_input_with_a_clear_4xx(client, picture, patch, status, words) -> None:
    body = {"image": b64(picture), "regions": [{"box": [1, 1, 5, 5]}], **patch}
    response = client.post("/v1/describe", json=body)
    assert response.status_code == status, response.text
    assert words in error_of(response)
    assert client.get("/healthz").status_code == 200  # still serving


@pytest.mark.parametrize(("text", "words"), [
    ("What is <mask><pos>?", "'<mask>'"),
    ("Describe <pos>", "'<pos>'"),
    ("<image> again", "'<image>'"),
    ("What is <region3>?", "<region3> but 1 region"),
])
def test_chat_refuses_slot_tokens_and_unknown_regions(client, picture, text, words) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(picture, text, regions=[{"box": [1, 1, 9, 9]}]))
    assert response.status_code == 400 and words in error_of(response)


@pytest.mark.parametrize(("body", "words"), [
    ({"messages": []}, "messages is missing"),
    ({"messages": [{"role": "user", "content": "hi <region1>"}]}, "no image"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "expected 'system'"),
    ({"messages": [{"role": "user", "content": 5}]}, "expected a string or a list"),
    ({"messages": [{"role": "user", "content": "a"}], "n": 2}, "n=2"),
])
def test_chat_rejects_malformed_messages(client, body, words) -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400 and words in error_of(response)


def test_non_utf8_bad_json_wrong_type_and_huge_bodies(client, picture) -> None:
    bad = client.post("/v1/describe", content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not UTF-8" in error_of(bad)
    broken = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in error_of(broken)
    text = client.post("/v1/describe", content=b"hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    huge = client.post("/v1/describe", content=b"x" * 300_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "at most 200000" in error_of(huge)

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(40):
            yield b"y" * 10_000

    streamed = client.post("/v1/describe", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/v1/describe", json={"image": b64(picture), "regions": [{"box": [1, 1, 5, 5]}]}).status_code == 200


def test_bearer_token(tiny_service, picture) -> None:
    with TestClient(create_app(ServeSettings(token="s3cret", default_new_tokens=2), service=tiny_service)) as c:
        body = {"image": b64(picture), "regions": [{"box": [1, 1, 5, 5]}]}
        assert c.post("/v1/describe", json=body).status_code == 401
        assert c.post("/v1/describe", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/v1/describe", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_examples_are_served_by_name_only(client) -> None:
    assert "coins" in client.get("/v1/examples").json()["examples"]
    coins = client.get("/v1/examples/coins").json()
    assert coins["image"].startswith("data:image/png;base64,") and len(coins["regions"]) == 4
    assert client.get("/v1/examples/..%2Fcli").status_code == 404


def test_chat_usage_is_what_the_generator_counted(client, tiny_service, picture) -> None:
    from PIL import Image

    from osprey.inference.predictor import Query
    from osprey.model.generation import DecodingOptions
    from osprey.serve.decoding import decode_regions
    from osprey.serve.worker import Cancelled

    body = client.post("/v1/chat/completions", json=chat_body(picture, regions=[{"box": [10, 10, 30, 30]}])).json()
    image = Image.fromarray(picture)
    masks = decode_regions([{"box": [10, 10, 30, 30]}], image, tiny_service.provider, 8)
    answer = tiny_service.answer(image, masks, [], "What is <region1>?", DecodingOptions(max_new_tokens=4),
                                 lambda: False)
    assert answer == body["choices"][0]["message"]["content"]
    assert body["usage"] == {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                             "total_tokens": answer.prompt_tokens + answer.completion_tokens}
    assert answer.prompt_tokens == tiny_service.predictor.prompt_length(Query("What is <region1>?", (0,)), masks)
    assert body["choices"][0]["finish_reason"] == answer.finish_reason in ("stop", "length")
    with pytest.raises(Cancelled):  # a cancelled generation is an error on the worker, never a short answer
        tiny_service.describe(image, masks, "short", DecodingOptions(max_new_tokens=4), lambda: True)


def test_openapi_bodies_come_from_the_request_dataclasses(client) -> None:
    from dataclasses import fields

    from osprey.serve.payloads import DescribeRequest

    paths = client.get("/openapi.json").json()["paths"]
    describe = paths["/v1/describe"]["post"]["requestBody"]["content"]
    keys = {key for f in fields(DescribeRequest) for key in f.metadata["body"]}
    assert set(describe["application/json"]["schema"]["properties"]) == keys
    assert describe["application/json"]["schema"]["required"] == ["image", "regions"]
    assert describe["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
    segment = paths["/v1/segment"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"point", "points", "labels", "box", "everything", "pick"} <= set(segment)


def test_sampling_takes_what_the_request_leaves_out_from_the_generation_config() -> None:
    """A sampled chat request (temperature > 0) gets top_p/top_k as the official generate() resolves
    them: the model's generation_config.json, else transformers' defaults (top_k 50)."""
    from osprey.serve.payloads import decoding_options

    settings = ServeSettings()
    greedy = decoding_options(settings, 8)
    assert not greedy.do_sample
    plain = decoding_options(settings, 8, 0.7)
    assert (plain.do_sample, plain.temperature, plain.top_p, plain.top_k) == (True, 0.7, 1.0, 50)
    vicuna = decoding_options(settings, 8, 0.2, generation_config={"top_p": 0.6, "temperature": 0.9})
    assert (vicuna.temperature, vicuna.top_p, vicuna.top_k) == (0.2, 0.6, 50)  # the request's temperature wins
    given = decoding_options(settings, 8, 0.2, 0.9, generation_config={"top_p": 0.6, "top_k": 20})
    assert (given.top_p, given.top_k) == (0.9, 20)
