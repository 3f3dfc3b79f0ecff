"""Judge-scored region description: GPT-4-style review of Osprey's detailed descriptions (§5.3) and
Ferret-Bench referring description / reasoning (§5.4).

Data: questions (``question_id, image, category, text`` with ``<region>``, ``annotation.segmentation``),
contexts (``image`` + ``prompt`` or ``text``: the judge's picture of the image), reference answers
(``question_id, text``). The judge sees the official review prompt (LLaVA ``eval_gpt_review``):
context, question, reference as Assistant 1, the model as Assistant 2, then the rule text, and
answers with two scores on its first line. Score = mean(model) / mean(reference) x 100.
Judge replies are cached on disk by :class:`osprey.chat_client.ChatClient`.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.tasks._io import image_path, load_json_or_jsonl
from osprey.eval.text_metrics import strip_stop
from osprey.text.prompts import STRAY_DOT_OVERVIEW

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
_RATE = (
    "\nPlease rate {what} of their responses. Each assistant receives an overall score on a scale of 1 to 10, "
    "where a higher score indicates better overall performance.\nPlease first output a single line containing "
    "only two values indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by "
    "a space.\nIn the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding "
    "any potential bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment."
)
# Osprey eval/rule.json ("description") and Ferret's ferret_gpt4_data/rule.json, verbatim.
RULES: dict[str, str] = {
    "description": (
        "We would like to request your feedback on the performance of two AI assistants in response to the user "
        "question displayed above. The user asks the question on observing an image. For your reference, the "
        "visual content in the image is represented with a few sentences describing the image.  In addition, "
        "specific object locations within the image are given, along with detailed coordinates. These coordinates "
        "are in the form of bounding boxes, represented as (x1, y1, x2, y2) with floating numbers ranging from 0 "
        "to 1. These values correspond to the top left x, top left y, bottom right x, and bottom right y. Also, "
        "several region description are given, each describing a box region of image, with detailed coordinates. "
        + _RATE.format(what="the helpfulness, relevance, accuracy, level of details")
    ),
}
_FERRET = (
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above. The user asks the question about specific region of an image. For your reference, "
    "the visual content in the image is represented with five descriptive sentences describing the same image. "
    "In addition, specific object locations within the image are given, along with detailed coordinates. These "
    "coordinates are in the form of bounding boxes, represented as (x1, y1, x2, y2) with floating numbers ranging "
    "from 0 to 1. These values correspond to the top left x, top left y, bottom right x, and bottom right y. Also, "
    "the relationships between pairs of objects are provided, in the format of object -> relationship -> "
    "subject, where the object/subject are indexed by object id from previous object lists as well as the object "
    "names. Also, several region description are given, each describing a box region of image, with detailed "
    "coordinates. " + _RATE.format(what="the spatial correspondence, helpfulness, relevance, accuracy, level of details")
)
RULES["refer_desc"] = _FERRET
RULES["refer_reason"] = _FERRET
_BOXES = re.compile(r"\[.*?\]")


def review_prompt(context: str, question: str, reference: str, answer: str, rule: str, role: str = "Assistant") -> str:
    """The user message of the review (LLaVA layout; the official ``[Context]\\{`` typo reads ``[Context]\\n``)."""
    return (f"[Context]\n{context}\n\n[Question]\n{question}\n\n"
            f"[{role} 1]\n{reference}\n\n[End of {role} 1]\n\n"
            f"[{role} 2]\n{answer}\n\n[End of {role} 2]\n\n[System]\n{rule}\n\n")


def parse_score(review: str) -> tuple[float, float] | None:
    """The two scores on the review's first line (commas allowed), else None (official: [-1, -1])."""
    parts = review.split("\n")[0].replace(",", " ").split(" ")
    if len(parts) != 2:
        return None
    try:
        return float(parts[0]), float(parts[1])
    except ValueError:
        return None


def relative_score(pairs: list[tuple[float, float]]) -> float:
    """mean(model) / mean(reference) x 100 (``summarize_gpt_score.py``)."""
    if not pairs:
        return float("nan")
    ref = sum(p[0] for p in pairs) / len(pairs)
    model = sum(p[1] for p in pairs) / len(pairs)
    return model / ref * 100 if ref else float("nan")


class JudgedDescription(Task):
    def __init__(self, name: str, questions: Path, contexts: Path, references: Path, images: Path, judge, *,
                 limit: int | None = None, max_tokens: int = 1024, temperature: float = 0.2,
                 category: str | None = None, colon_split: bool = True) -> None:
        self.name = name
        # The description task keeps the text between the first and second ':' of an answer, as
        # osprey_generate_gpt_description_answer.py (``split(':')[1]``); False judges the whole answer.
        self.colon_split = colon_split
        self.category = category  # overrides the questions' own (Osprey's Ferret files say "description")
        self.questions, self.contexts, self.references = Path(questions), Path(contexts), Path(references)
        self.images, self.judge, self.limit = Path(images), judge, limit
        self.params = {"max_tokens": max_tokens, "temperature": temperature}

    def requests(self) -> list[Request]:
        out = []
        for q in load_json_or_jsonl(self.questions)[: self.limit]:
            path = image_path(self.images, q["image"])
            with Image.open(path) as im:
                size = (im.height, im.width)
            text = q["text"].replace("<region>", "<region1>")
            out.append(Request(key=str(q["question_id"]), image=path, size=size, prompt=STRAY_DOT_OVERVIEW + text,
                               regions=(q["annotation"]["segmentation"],),
                               meta={"image": q["image"], "category": q["category"], "question": q["text"]}))
        return out

    def score(self, answers: list[Answer]) -> Scores:
        contexts = {c["image"]: c.get("prompt", c.get("text")) for c in load_json_or_jsonl(self.contexts)}
        references = {str(r["question_id"]): r["text"] for r in load_json_or_jsonl(self.references)}
        pairs: dict[str, list[tuple[float, float]]] = {}
        per, failed = {}, 0
        for a in answers:
            meta = a.request.meta
            category = self.category or meta["category"]
            if category not in RULES:
                raise ValueError(f"question {a.request.key}: category {category!r} has no rule; expected one of {sorted(RULES)}")
            answer = strip_stop(a.text)
            if self.name == "description" and self.colon_split and ":" in answer:
                answer = answer.split(":")[1]
            if category in ("refer_desc", "refer_reason"):  # Ferret's postprocess_answer drops " [boxes]"
                for box in _BOXES.findall(answer):
                    answer = answer.replace(" " + box, "")
            content = review_prompt(contexts[meta["image"]], meta["question"], references[a.request.key], answer,
                                    RULES[category])
            review = self.judge.complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}],
                                         **self.params)
            scores = parse_score(review)
            per[a.request.key] = {"review": review, "scores": list(scores) if scores else None}
            if scores is None:
                failed += 1
                continue
            pairs.setdefault(category, []).append(scores)
        everything = [p for v in pairs.values() for p in v]
        metrics = {"questions": len(answers), "unparsed_reviews": failed, "score": relative_score(everything),
                   **{f"score_{c}": relative_score(v) for c, v in sorted(pairs.items())}}
        table = markdown_table(["task", "questions", "score", "unparsed"],
                               [[self.name, len(answers), metrics["score"], failed]])
        return Scores(metrics, table, per)
