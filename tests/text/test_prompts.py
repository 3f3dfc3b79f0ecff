"""The shared prompt strings: pinned literally here, and checked against the official dossier.

The dossier (osprey-official.md, in the shared folder beside the repo) quotes each string with
``\\n`` escapes, ``<mask><pos>`` for a region and line breaks inside long quotes; the check writes
each constant the same way and looks for it in the dossier's text with its line breaks joined.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from osprey.data.prompts import normalize_image_turn
from osprey.inference.batch import BEGIN
from osprey.inference.predictor import QUESTIONS
from osprey.text import prompts

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = (REPO_ROOT / ".." / "shared" / "reference" / "osprey-official.md").resolve()

# Literal copies, so the test cannot pass vacuously when the dossier is absent.
EXPECTED = {
    "OVERVIEW": "<image>\nThis provides an overview of the picture.\n",
    "VCR_OVERVIEW": "<image>.\nThis provides an overview of the picture.\n",
    "STRAY_DOT_OVERVIEW": "<image>\n.\nThis provides an overview of the picture.\n",
    "IMAGE_ONLY": "<image>\n",
    "DEMO_OVERVIEW": "<image>\n\nThis provides an overview of the picture.\n",
    "SHORT_DESCRIPTION_QUESTION": "Please give me a short description of <region1>. Using a short phrase.",
    "DETAILED_DESCRIPTION_QUESTION": "Can you give me a detailed description of <region1>?",
    "CATEGORY_QUESTION": "What is the category of <region1>? Using only one word or phrase.",
    "REFCOCOG_QUESTION": "Please give me a short description of <region1>.",
    "OPENSEG_QUESTION": "What is in <region1>? Using a short phrase.",
    "LVIS_PACO_PROMPT": "<image>\nThis provides an overview of the picture.\n"
    "What is the category of <region1>? Using only one word or phrase.",
    "REFCOCOG_PROMPT": "<image>\n.\nThis provides an overview of the picture.\n"
    "Please give me a short description of <region1>.",
    "OPENSEG_PROMPT": "<image>\n.\nThis provides an overview of the picture.\n"
    "What is in <region1>? Using a short phrase.",
}
# How the dossier quotes each one (when it quotes it whole; None: checked through its parts).
AS_QUOTED = {
    "OVERVIEW": '"{}"',
    "VCR_OVERVIEW": None,  # the dossier abbreviates it ("<image>.\nThis provides..."); see below
    "STRAY_DOT_OVERVIEW": '"{}',
    "IMAGE_ONLY": '"{}"',
    "DEMO_OVERVIEW": None,  # the dossier misses it (official-divergences.md §5: demo/osprey_inference.py)
    "SHORT_DESCRIPTION_QUESTION": '"{}"',
    "DETAILED_DESCRIPTION_QUESTION": '"{}"',
    "CATEGORY_QUESTION": '"{}"',
    "REFCOCOG_QUESTION": '"{}"',
    "OPENSEG_QUESTION": '"{}"',
    "LVIS_PACO_PROMPT": '"{}"',
    "REFCOCOG_PROMPT": None,  # §1.8 names the prefix, §5.6 the question
    "OPENSEG_PROMPT": '"{}"',
}


def test_every_constant_is_pinned() -> None:
    assert set(prompts.__all__) == set(EXPECTED) == set(AS_QUOTED)
    for name, text in EXPECTED.items():
        assert getattr(prompts, name) == text, name


def test_whole_prompts_are_prefix_plus_question() -> None:
    assert prompts.LVIS_PACO_PROMPT == prompts.OVERVIEW + prompts.CATEGORY_QUESTION
    assert prompts.REFCOCOG_PROMPT == prompts.STRAY_DOT_OVERVIEW + prompts.REFCOCOG_QUESTION
    assert prompts.OPENSEG_PROMPT == prompts.STRAY_DOT_OVERVIEW + prompts.OPENSEG_QUESTION


def test_the_written_vcr_prefix_is_read_as_the_stray_dot_one() -> None:
    # What preprocess_multimodal makes of "<image>.\n...": the eval variant, stray "." included.
    question = "What is <region1>?"
    assert normalize_image_turn(prompts.VCR_OVERVIEW + question) == prompts.STRAY_DOT_OVERVIEW + question


def test_users_share_the_constants() -> None:
    assert BEGIN is prompts.OVERVIEW
    assert QUESTIONS == {
        "short": prompts.SHORT_DESCRIPTION_QUESTION,
        "detailed": prompts.DETAILED_DESCRIPTION_QUESTION,
        "category": prompts.CATEGORY_QUESTION,
    }


def _as_in_dossier(text: str) -> str:
    return text.replace("\n", "\\n").replace("<region1>", "<mask><pos>")


@pytest.fixture(scope="module")
def dossier() -> str:
    if not OFFICIAL.is_file():
        pytest.skip(f"{OFFICIAL} not present (it lives in the shared folder beside the repo)")
    # A long quote may break across lines, the next line indented: join those breaks with one space.
    return re.sub(r"\n\s*", " ", OFFICIAL.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(name for name, quote in AS_QUOTED.items() if quote))
def test_constant_is_quoted_verbatim_in_the_dossier(dossier: str, name: str) -> None:
    quoted = AS_QUOTED[name].format(_as_in_dossier(getattr(prompts, name)))
    assert quoted in dossier, f"{name} = {getattr(prompts, name)!r} is not in {OFFICIAL.name} as {quoted!r}"


def test_abbreviated_ones_match_the_dossier(dossier: str) -> None:
    assert '"<image>.\\nThis provides..."' in dossier  # VCR_OVERVIEW's written form, abbreviated there
    # RefCOCOg: the question (§5.6) and the stray-dot prefix for its eval (§1.8).
    assert f'"{_as_in_dossier(prompts.REFCOCOG_QUESTION)}"' in dossier
    assert "OV-seg/RefCOCOg/Ferret/GPT-description eval" in dossier
