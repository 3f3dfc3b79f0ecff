"""The official Osprey prompt strings that more than one part of osprey uses, each written once.

Training (``data/``, ``synthetic/``), inference and evaluation all import them from here, so the
prompts the model is trained on, asked with and scored with cannot drift apart. Strings are verbatim
from the official code (osprey-official.md §1.8 and §5), except that a region is written
``<region1>`` where the official string has ``<mask><pos>`` (rendering turns each ``<regionK>`` into
the two region slots). Training-only templates that one parser uses (the 30 detailed-description
questions, the stage-2 begins, the VCR intros) stay beside that parser in :mod:`osprey.data.prompts`.

This module is the lowest layer: it imports nothing from osprey.
"""

from __future__ import annotations

__all__ = [
    "CATEGORY_QUESTION",
    "DEMO_OVERVIEW",
    "DETAILED_DESCRIPTION_QUESTION",
    "IMAGE_ONLY",
    "LVIS_PACO_PROMPT",
    "OPENSEG_PROMPT",
    "OPENSEG_QUESTION",
    "OVERVIEW",
    "REFCOCOG_PROMPT",
    "REFCOCOG_QUESTION",
    "SHORT_DESCRIPTION_QUESTION",
    "STRAY_DOT_OVERVIEW",
    "VCR_OVERVIEW",
]

# --- First-turn prefixes: the image, then (mostly) the overview sentence ------------------------------
# The four variants the official code uses, side by side. The model only ever reads OVERVIEW,
# STRAY_DOT_OVERVIEW or IMAGE_ONLY: VCR_OVERVIEW is the written form that becomes STRAY_DOT_OVERVIEW.

# Training: Osprey-724K (osprey_724k.py ``begin_str``: conversation, short-form, part-level, LVIS
# positive/negative, detailed description) and VG (vg.py). Eval: LVIS/PACO (lvis_paco_eval.py). Ours:
# the default prefix of every question the predictor is asked (``inference.batch.Query``).
OVERVIEW = "<image>\nThis provides an overview of the picture.\n"

# Training, VCR (vcr.py): written with "." straight after the image token. The official
# ``preprocess_multimodal`` strips "<image>" and puts "<image>\n" in front, so what the model is
# trained on is STRAY_DOT_OVERVIEW (``data.prompts.normalize_image_turn`` does that step).
VCR_OVERVIEW = "<image>.\nThis provides an overview of the picture.\n"

# Eval: open-vocabulary segmentation (eval_open_vocab_seg_detectron2.py), RefCOCOg captioning
# (refcocog_eval.py), the GPT-4-judged description (osprey_generate_gpt_description_answer.py) and
# Ferret-Bench (ferret_bench_eval.py). Differs from OVERVIEW by the official stray "." on its own line
# (the same "<image>.\n" written form as VCR_OVERVIEW, after normalisation); kept because the released
# numbers were measured with it.
STRAY_DOT_OVERVIEW = "<image>\n.\nThis provides an overview of the picture.\n"

# Demo (demo/osprey_inference.py): written with a double newline and given to the template as is
# (no ``preprocess_multimodal``), so an official checkpoint is asked "<image>\n\nThis provides ...".
# ``inference.demo`` uses it for official checkpoints; a model trained here keeps OVERVIEW.
DEMO_OVERVIEW = "<image>\n\nThis provides an overview of the picture.\n"

# Eval: POPE (pope_eval.py): the image, then the question; no overview sentence, no regions.
IMAGE_ONLY = "<image>\n"

# --- Region questions -----------------------------------------------------------------------------------
# Demo "short description" (our ``short`` mode); also the synthetic benchmark's short-caption question.
SHORT_DESCRIPTION_QUESTION = "Please give me a short description of <region1>. Using a short phrase."
# Demo "detailed description" (our ``detailed`` mode).
DETAILED_DESCRIPTION_QUESTION = "Can you give me a detailed description of <region1>?"
# Eval: LVIS/PACO referring classification (lvis_paco_eval.py; our ``category`` mode).
CATEGORY_QUESTION = "What is the category of <region1>? Using only one word or phrase."
# Eval: RefCOCOg region captioning (refcocog_eval.py). The demo's short question without
# " Using a short phrase.".
REFCOCOG_QUESTION = "Please give me a short description of <region1>."
# Eval: open-vocabulary segmentation (eval_open_vocab_seg_detectron2.py).
OPENSEG_QUESTION = "What is in <region1>? Using a short phrase."

# --- Whole first turns of the benchmarks with one fixed question -------------------------------------
LVIS_PACO_PROMPT = OVERVIEW + CATEGORY_QUESTION  # no stray "."
REFCOCOG_PROMPT = STRAY_DOT_OVERVIEW + REFCOCOG_QUESTION  # stray "."
OPENSEG_PROMPT = STRAY_DOT_OVERVIEW + OPENSEG_QUESTION  # stray "."
