"""The runner asks each request's prompt as the whole first user turn (no prefix of its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from osprey.eval.runner import Request, request_query
from osprey.inference.batch import Query
from osprey.text.conversation import Turn
from osprey.text.prompts import IMAGE_ONLY, OPENSEG_PROMPT, OVERVIEW


def _request(prompt: str) -> Request:
    return Request(key="k", image=Path("x.png"), size=(4, 4), prompt=prompt)


@pytest.mark.parametrize("prompt", [OPENSEG_PROMPT, IMAGE_ONLY + "Is there a dog in the image?"])
def test_request_prompt_is_the_whole_first_turn(prompt: str) -> None:
    query = request_query(_request(prompt), (0,))
    assert query.prefix == "" and query.regions == (0,)
    assert query.turns() == [Turn("user", prompt)]


def test_request_prompt_without_the_image_is_refused() -> None:
    with pytest.raises(ValueError, match="has no <image>"):
        request_query(_request("What is in <region1>?"), (0,))


def test_query_prefix_defaults_to_the_overview() -> None:
    assert Query("What is <region1>?", (0,)).turns() == [Turn("user", OVERVIEW + "What is <region1>?")]
    history = (Turn("user", "Hi <region1>"), Turn("assistant", "A coin."))
    assert Query("And now?", (0,), history=history, prefix="<image>\n").turns() == [
        Turn("user", "<image>\nHi <region1>"), Turn("assistant", "A coin."), Turn("user", "And now?")]
