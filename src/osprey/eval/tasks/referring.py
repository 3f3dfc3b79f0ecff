"""Referring object classification on LVIS and PACO (``lvis_paco_eval.py``, osprey-official.md §5.2).

Data: ``lvis_val_1k_category.json`` / ``paco_val_1k_category.json``, a list of images with
``file_name, height, width, categories[i], annotations[i].segmentation``. One question per object:
``"<image>\\nThis provides an overview of the picture.\\nWhat is the category of <mask><pos>? Using only
one word or phrase."``. Metrics (x100): Semantic Similarity (all-MiniLM-L6-v2 cosine) and Semantic IoU.
"""

from __future__ import annotations

from pathlib import Path

from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.tasks._io import image_path, load_json_or_jsonl
from osprey.eval.text_metrics import (
    clean_category_answer,
    clean_category_label,
    semantic_iou,
    sentence_encoder,
)
from osprey.text.prompts import LVIS_PACO_PROMPT


class ReferringClassification(Task):
    def __init__(self, name: str, data: Path, images: Path, *, limit: int | None = None,
                 sentence_model: str | None = None) -> None:
        self.name = name
        self.data, self.images, self.limit = Path(data), Path(images), limit
        self.sentence_model = sentence_model

    def requests(self) -> list[Request]:
        records = load_json_or_jsonl(self.data)[: self.limit]
        out = []
        for n, rec in enumerate(records):
            categories, annotations = rec["categories"], rec["annotations"]
            if len(categories) != len(annotations):
                raise ValueError(f"{self.data} record {n}: {len(categories)} categories for "
                                 f"{len(annotations)} annotations; expected one per object")
            path = image_path(self.images, rec["file_name"])
            for i, (category, ann) in enumerate(zip(categories, annotations)):
                out.append(Request(
                    key=f"{n}-{i}", image=path, size=(int(rec["height"]), int(rec["width"])), prompt=LVIS_PACO_PROMPT,
                    regions=(ann["segmentation"],), meta={"category": clean_category_label(category)},
                ))  # fmt: skip
        return out

    def score(self, answers: list[Answer]) -> Scores:
        preds = [clean_category_answer(a.text) for a in answers]
        gts = [a.request.meta["category"] for a in answers]
        sims = sentence_encoder(self.sentence_model).pairwise_cosine(preds, gts) if preds else []
        ious = [semantic_iou(p.lower(), g.lower()) for p, g in zip(preds, gts)]
        n = len(answers)
        ss = float(sum(float(s) for s in sims) / n * 100) if n else float("nan")
        siou = float(sum(ious) / n * 100) if n else float("nan")
        per = {a.request.key: {"prediction": p, "category": g, "ss": round(float(s), 6), "s_iou": round(i, 6)}
               for a, p, g, s, i in zip(answers, preds, gts, sims, ious)}
        table = markdown_table(["task", "objects", "SS", "S-IoU"], [[self.name, n, ss, siou]])
        return Scores({"objects": n, "SS": ss, "S-IoU": siou}, table, per)
