"""POPE object hallucination (``pope_eval.py`` + ``pope/evaluate.py``, osprey-official.md §5.5).

Data: COCO POPE JSON lines ``{"question_id", "image", "text", "label"}`` (random / popular /
adversarial files). Prompt ``"<image>\\n" + text``, no regions. The answer is lower-cased, cut at its
first ``.``, commas dropped; it is "no" when a word is ``No``, ``not`` or ``no``, else "yes".
Metrics (x100): accuracy, precision, recall, F1, yes-ratio ("yes" is the positive class).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.tasks._io import image_path, load_json_or_jsonl
from osprey.text.prompts import IMAGE_ONLY


def parse_yes_no(answer: str) -> str:
    text = answer.lower()  # pope_eval.py stores outputs.lower()
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: list[str], labels: list[str]) -> dict[str, float]:
    """Counts and rates (x100) of yes/no ``predictions`` against ``labels``."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    pred = [p != "no" for p in predictions]
    gold = [g != "no" for g in labels]
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    tn = sum(not p and not g for p, g in zip(pred, gold))
    fn = sum(not p and g for p, g in zip(pred, gold))
    n = len(pred)

    def ratio(a: int, b: int) -> float:
        return a / b * 100 if b else float("nan")

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan")
    return {"TP": tp, "FP": fp, "TN": tn, "FN": fn, "accuracy": ratio(tp + tn, n), "precision": precision,
            "recall": recall, "F1": f1, "yes_ratio": ratio(sum(pred), n)}


class Pope(Task):
    def __init__(self, data: Path, images: Path, *, limit: int | None = None, name: str = "pope") -> None:
        self.data, self.images, self.limit, self.name = Path(data), Path(images), limit, name

    def requests(self) -> list[Request]:
        out = []
        sizes: dict[Path, tuple[int, int]] = {}
        for q in load_json_or_jsonl(self.data)[: self.limit]:
            path = image_path(self.images, q["image"])
            if path not in sizes:
                with Image.open(path) as im:
                    sizes[path] = (im.height, im.width)
            out.append(Request(key=str(q["question_id"]), image=path, size=sizes[path],
                               prompt=IMAGE_ONLY + q["text"], meta={"label": q["label"]}))
        return out

    def score(self, answers: list[Answer]) -> Scores:
        parsed = [parse_yes_no(a.text) for a in answers]
        labels = [a.request.meta["label"] for a in answers]
        m = pope_metrics(parsed, labels)
        per = {a.request.key: {"parsed": p, "label": g} for a, p, g in zip(answers, parsed, labels)}
        table = markdown_table(["task", "questions", "Acc", "Prec", "Rec", "F1", "Yes"],
                               [[self.name, len(answers), m["accuracy"], m["precision"], m["recall"], m["F1"],
                                 m["yes_ratio"]]])
        return Scores({"questions": len(answers), **m}, table, per)
