"""The web demo draws small images scaled up, maps clicks back to image pixels, and shows whole answers."""

from __future__ import annotations

import json
import os

import pytest
from serve_helpers import running
from test_ui import ARGS, CHROMIUM, REQUIRED

from osprey.serve.api import create_app
from osprey.serve.settings import ServeSettings

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not REQUIRED, reason=f"{CHROMIUM} is absent (apt-get install chromium)"
)


def test_small_images_are_drawn_larger_and_clicks_land_on_image_pixels(tiny_service) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = create_app(ServeSettings(ui=True, default_new_tokens=12, max_new_tokens=64), service=tiny_service)
    with running(app) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(20_000)
            page.goto(url + "/")
            page.wait_for_selector("[data-testid=example] option[value=scene]", state="attached")

            def load(name: str) -> dict:
                page.get_by_test_id("example").select_option(name)
                page.wait_for_function(f"document.getElementById('status').textContent === 'loaded example {name}'")
                return page.evaluate("""() => { const r = canvas.getBoundingClientRect();
                    return {w: canvas.width, h: canvas.height, cw: canvas.clientWidth, ch: canvas.clientHeight,
                            left: r.left + canvas.clientLeft, top: r.top + canvas.clientTop}; }""")

            coins = load("coins")  # 384 x 303: already usable, drawn as is
            assert (coins["w"], coins["h"], coins["cw"], coins["ch"]) == (384, 303, 384, 303)
            box = load("scene")  # the 256 px bundled scene: twice as large on the page, same pixels
            assert (box["w"], box["h"], box["cw"], box["ch"]) == (256, 256, 512, 512)
            for x, y in ((40.25, 200.75), (180.5, 30.0)):
                with page.expect_request("**/v1/segment") as sent:
                    page.mouse.click(box["left"] + 2 * x, box["top"] + 2 * y)  # page = image pixel x 2
                point = json.loads(sent.value.post_data)["point"]
                assert point == pytest.approx([x, y], abs=0.51), point  # (mouse events land on whole page pixels)
            page.wait_for_function("document.querySelectorAll('[data-testid=region]').length === 2")

            page.get_by_test_id("mode-detailed").check()
            with page.expect_response("**/v1/describe") as reply:
                page.get_by_test_id("describe").click()
            answers = [r["answer"] for r in reply.value.json()["regions"]]
            page.wait_for_function("document.getElementById('status').textContent.startsWith('described 2')")
            shown = page.locator("[data-testid=answer]").all_text_contents()
            assert shown == answers and all(len(a.split()) > 1 for a in answers)  # whole answers, not a word
            # removing a region keeps the other one's answer beside its swatch
            page.locator("[data-testid=region] button").first.click()
            assert page.locator("[data-testid=answer]").all_text_contents() == answers[1:]
        finally:
            browser.close()
