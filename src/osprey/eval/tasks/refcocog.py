"""Region captioning on RefCOCOg val (``refcocog_eval.py``, osprey-official.md §5.6).

Data: ``finetune_refcocog_val_with_mask.json``, COCO style: ``images`` (``id, file_name, height, width,
caption``) and ``annotations`` (``image_id, segmentation``); each annotation of an image gets the
image entry's ``caption`` as its one reference. Prompt: ``"<image>\\n.\\nThis provides an overview of the
picture.\\nPlease give me a short description of <mask><pos>."`` (the stray "." is the official one).
Metrics: METEOR and CIDEr (pycocoevalcap, x100); SPICE is skipped (needs a download).
"""

from __future__ import annotations

import json
from pathlib import Path

from osprey.eval.caption_metrics import SPICE_SKIPPED, caption_scores, require_java
from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.tasks._io import image_path
from osprey.eval.text_metrics import strip_stop
from osprey.text.prompts import REFCOCOG_PROMPT


def clean_caption(text: str) -> str:
    """Official: strip, drop ``</s>``, keep the text after the first ``:`` if any.

    (The script then writes ``.`` as ``.\\n``; pycocoevalcap's tokenizer turns newlines back into
    spaces, so that step changes nothing and is left out.)
    """
    text = strip_stop(text)
    if ":" in text:
        text = text.split(":")[1]
    return text


class RefCOCOgCaptioning(Task):
    name = "refcocog"

    def __init__(self, data: Path, images: Path, *, limit: int | None = None) -> None:
        self.data, self.images, self.limit = Path(data), Path(images), limit

    def requests(self) -> list[Request]:
        require_java()  # fail before generating, not after
        coco = json.loads(self.data.read_text(encoding="utf-8"))
        by_image: dict[int, list[dict]] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        out = []
        for img in coco["images"][: self.limit]:
            if "caption" not in img:
                raise ValueError(f"{self.data}: image {img.get('id')} has no 'caption' (the reference)")
            path = image_path(self.images, img["file_name"])
            for ann in by_image.get(img["id"], []):
                out.append(Request(
                    key=str(ann["id"]), image=path, size=(int(img["height"]), int(img["width"])), prompt=REFCOCOG_PROMPT,
                    regions=(ann["segmentation"],), meta={"reference": img["caption"]},
                ))  # fmt: skip
        return out

    def score(self, answers: list[Answer]) -> Scores:
        preds = {a.request.key: clean_caption(a.text) for a in answers}
        refs = {a.request.key: [a.request.meta["reference"]] for a in answers}
        scores = caption_scores(refs, preds)
        metrics = {"regions": len(answers), "METEOR": scores["METEOR"] * 100, "CIDEr": scores["CIDEr"] * 100,
                   "SPICE": None, "note": SPICE_SKIPPED}
        per = {k: {"caption": preds[k], "reference": refs[k][0]} for k in preds}
        table = markdown_table(["task", "regions", "METEOR", "CIDEr"],
                               [[self.name, len(answers), metrics["METEOR"], metrics["CIDEr"]]])
        return Scores(metrics, table + f"\n\n{SPICE_SKIPPED}", per)
