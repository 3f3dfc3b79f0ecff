"""One demo style, three surfaces: ``osprey describe``/``osprey chat --demo-style``, the API's
``demo_style`` field and the web demo's selector give the same answer text for the same image, mask
and style (tiny preset, seeded weights, greedy)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import data_url, running

from osprey.cli import main
from osprey.inference.demo import DEMO_MAX_HEIGHT, OFFICIAL, official_demo_answer
from osprey.masks import encode_rle
from osprey.serve.api import create_app
from osprey.serve.settings import ServeSettings

TOKENS = 6
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, np.ndarray, Path, dict]:
    """A 600 x 80 picture (taller than 512: the official style downscales it) and one mask."""
    root = tmp_path_factory.mktemp("scene")
    rgb = np.full((600, 80, 3), 40, dtype=np.uint8)
    rgb[100:400, 20:60] = [210, 60, 40]
    mask = np.zeros((600, 80), dtype=bool)
    mask[100:400, 20:60] = True
    Image.fromarray(rgb).save(root / "tall.png")
    rle = encode_rle(mask)
    (root / "regions.json").write_text(json.dumps([rle]))
    return root / "tall.png", rgb, root / "regions.json", rle


@pytest.fixture(scope="module")
def app():
    from osprey.serve.service import load_service

    settings = ServeSettings(ui=True, default_new_tokens=TOKENS, max_new_tokens=64)
    return create_app(settings, service=load_service("tiny", max_regions=8))


def _cli_describe(scene, style: str, tmp_path: Path) -> str:
    image, _, regions, _ = scene
    out = tmp_path / style
    assert main(["describe", str(image), "--rle", str(regions), "--model", "tiny", "--demo-style", style,
                 "--max-new-tokens", str(TOKENS), "--out", str(out)]) == 0
    record = json.loads((out / "answers.json").read_text())
    assert record["demo_style"] == ("official" if style == "official" else "ours")
    return record["regions"][0]["answer"]


def _api_describe(app, scene, style: str) -> str:
    _, rgb, _, rle = scene
    body = {"image": data_url(rgb), "regions": [rle], "mode": "short", "demo_style": style}
    response = TestClient(app).post("/v1/describe", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["demo_style"] == ("official" if style == "official" else "ours")
    assert response.json()["regions"][0]["area"] == 300 * 40  # masks come back at the image's own size
    return response.json()["regions"][0]["answer"]


def test_describe_gives_the_same_answer_in_the_cli_and_the_api(app, scene, tmp_path):
    answers = {style: _cli_describe(scene, style, tmp_path) for style in ("auto", "official", "ours")}
    for style, answer in answers.items():
        assert _api_describe(app, scene, style) == answer, style
    assert answers["auto"] == answers["ours"] != answers["official"]  # a model trained here keeps its own style
    # the official answer is the official post-processing of the model's answer to the official
    # prompt on the image and mask downscaled to height 512
    service = app.state.service
    _, rgb, _, rle = scene
    from osprey.masks import decode_rle

    image, masks = OFFICIAL.inputs(Image.fromarray(rgb), decode_rle(rle, 600, 80)[None])
    assert image.height == DEMO_MAX_HEIGHT and masks.shape == (1, DEMO_MAX_HEIGHT, 68)
    from osprey.model.generation import DecodingOptions

    raw = service.predictor.describe(image, masks, "short", DecodingOptions(max_new_tokens=TOKENS), prefix=OFFICIAL.prefix)
    assert answers["official"] == official_demo_answer(raw[0])


def test_chat_gives_the_same_answer_in_the_cli_and_the_api(app, scene, monkeypatch, capsys):
    image, rgb, regions, rle = scene
    question = "What is <region1>?"
    monkeypatch.setattr("sys.stdin", io.StringIO(question + "\n/quit\n"))
    assert main(["chat", str(image), "--rle", str(regions), "--model", "tiny", "--demo-style", "official",
                 "--max-new-tokens", str(TOKENS)]) == 0
    cli = capsys.readouterr().out.splitlines()[1]  # (line 0 lists the regions)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(rgb)}},
                                             {"type": "text", "text": question}]}]
    client = TestClient(app)
    body = {"messages": messages, "regions": [rle], "demo_style": "official", "max_tokens": TOKENS}
    reply = client.post("/v1/chat/completions", json=body).json()
    assert reply["osprey"]["demo_style"] == "official"
    assert reply["choices"][0]["message"]["content"] == cli
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == cli


@pytest.mark.parametrize("bad", ["Official", 1, "", ["auto"]])
def test_a_bad_demo_style_is_a_422_naming_the_value_and_the_choices(app, scene, bad):
    _, rgb, _, rle = scene
    response = TestClient(app).post("/v1/describe", json={"image": data_url(rgb), "regions": [rle], "demo_style": bad})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "demo_style" and repr(bad) in error["message"]
    assert "auto, official, ours" in error["message"]


@pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("OSPREY_REQUIRE_BROWSER") != "1",
                    reason=f"{CHROMIUM} is absent")
def test_the_web_demo_sends_the_style_and_shows_the_same_answer(app, scene, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from test_ui import ARGS

    image, _, _, rle = scene
    expected = {style: _cli_describe(scene, style, tmp_path) for style in ("official", "ours")}
    with running(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(url + "/")
            assert page.get_by_test_id("demo-style").input_value() == "auto"  # the CLI's default
            page.get_by_test_id("upload").set_input_files(str(image))
            page.wait_for_function("state.image !== null && state.h === 600")
            page.evaluate("rle => addMask({rle, area: 12000, box: null})", rle)  # the page's own region list
            for style, answer in expected.items():
                page.get_by_test_id("demo-style").select_option(style)
                page.evaluate("() => { document.getElementById('status').textContent = ''; }")
                page.get_by_test_id("describe").click()
                page.wait_for_function("document.getElementById('status').textContent.startsWith('described 1')")
                assert page.locator("[data-testid=answer]").all_inner_texts() == [answer], style
        finally:
            browser.close()
