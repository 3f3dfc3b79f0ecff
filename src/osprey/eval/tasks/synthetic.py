"""The held-out synthetic benchmark: every question of ``eval_questions.jsonl`` plus short captions.

The split is generated with the synthetic writer from test seeds (``test_seeds``: >= 10**9, never a
training seed). Questions are rendered as the training parsers render them (short-form and part-level:
the official "Ther are N part regions" listing and the single-word limit; positive/negative, category
naming and descriptions: the overview prefix and the question). Scores are exact match after
normalisation (lower-case, no punctuation, no articles), grouped as category, colour, part (part
naming), yesno, relation, plus CIDEr of short captions; tables split by distractors and region size.

Two more sets, scored apart from those groups:

- *descriptions*: the detailed question for every object, each answer parsed into facts and judged
  against the scene (:mod:`osprey.eval.description_facts`): recall, precision, per-attribute accuracy;
- *held-out wordings*: every question type again in wordings training never uses
  (:mod:`osprey.eval.heldout_wording`), yes/no relations in both orders; accuracy overall and by type.
"""

from __future__ import annotations

import json
from pathlib import Path

from osprey.data.prompts import SHORT_ANSWER_LIMIT, region_count_sentence
from osprey.eval.caption_metrics import caption_scores
from osprey.eval.description_facts import ATTRIBUTES, score_description
from osprey.eval.heldout_wording import heldout_items, is_yes_no, yes_no_answer
from osprey.eval.runner import Answer, Request, Scores, Task, markdown_table
from osprey.eval.text_metrics import exact_match, strip_stop
from osprey.synthetic.questions import short_caption_record
from osprey.synthetic.seeds import test_seeds
from osprey.synthetic.world import WorldConfig, generate_scene
from osprey.synthetic.writer import EVAL_FILE, image_file_name, write_split
from osprey.text.prompts import OVERVIEW

GROUPS: dict[str, tuple[str, ...]] = {
    "category": ("category", "category_naming"),
    "colour": ("colour",),
    "part": ("part_name",),
    "yesno": ("pos_neg",),
    "relation": ("relation_horizontal", "relation_vertical", "relation_size"),
}
# Region size buckets by the region's share of the image (metadata ``area_fraction``).
SIZE_BUCKETS = ((0.02, "small"), (0.06, "medium"), (float("inf"), "large"))


def size_bucket(area_fraction: float) -> str:
    return next(name for limit, name in SIZE_BUCKETS if area_fraction < limit)


def render_turn(subset: str, question: str, regions: int) -> str:
    """The full first user turn of a question of ``subset`` about ``regions`` regions, as the training
    parser renders that subset."""
    if subset in ("short_form", "part_level"):
        tags = [f"<region{k}>" for k in range(1, regions + 1)]
        return OVERVIEW + region_count_sentence(tags) + question.replace("<", "").replace(">", "") + SHORT_ANSWER_LIMIT
    return OVERVIEW + question


def render_question(line: dict) -> str:
    """The full first user turn for an eval line, as the training parser renders its subset."""
    return render_turn(line["subset"], line["question"], len(line["annotation"]))


def _or_none(value: float) -> float | None:
    """NaN (nothing to divide) as None, so predictions.jsonl stays strict JSON."""
    return None if value != value else value


def _ratio(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


class SyntheticBenchmark(Task):
    name = "synthetic"
    # Generation cap: the short answers stop at a few tokens; the world's detailed paragraphs take
    # 50 tokens on average and at most 73 (SmolLM2 tokenizer, 468 paragraphs of 100 test scenes).
    default_max_new_tokens = 96

    def __init__(self, out_dir: Path, *, seed: int = 0, images: int = 20, config: WorldConfig | None = None) -> None:
        self.data_dir = Path(out_dir) / "data"
        self.seeds = test_seeds(images, seed)
        self.config = config or WorldConfig()

    def requests(self) -> list[Request]:
        write_split(self.data_dir, self.seeds, self.config, split="test")
        out = []
        for line in (json.loads(s) for s in (self.data_dir / EVAL_FILE).read_text().splitlines() if s.strip()):
            out.append(Request(
                key=line["question_id"], image=self.data_dir / "images" / line["file_name"],
                size=(line["height"], line["width"]), prompt=render_question(line),
                regions=tuple(a["segmentation"] for a in line["annotation"]),
                meta={"type": line["type"], "answer": line["answer"], "image_id": line["image_id"],
                      **line["metadata"]},
            ))  # fmt: skip
        for seed in self.seeds:
            scene = generate_scene(seed, self.config)
            for k, item in enumerate(short_caption_record(scene).turns):
                out.append(Request(
                    key=f"{seed}-caption-{k}", image=self.data_dir / "images" / image_file_name(seed),
                    size=(scene.height, scene.width), prompt=OVERVIEW + item.question(),
                    regions=(item.regions[0].mask(scene),), meta={"type": "short_caption", "answer": item.answer,
                                                                  **item.meta},
                ))  # fmt: skip
            for k, item in enumerate(heldout_items(scene)):
                out.append(Request(
                    key=f"{seed}-heldout-{k}", image=self.data_dir / "images" / image_file_name(seed),
                    size=(scene.height, scene.width), prompt=render_turn(item.subset, item.question(), len(item.regions)),
                    regions=tuple(r.mask(scene) for r in item.regions),
                    meta={"type": item.qtype, "answer": item.answer, "image_id": seed, **item.meta},
                ))  # fmt: skip
        return out

    def _descriptions(self, answers: list[Answer], per: dict) -> dict:
        """Recall and precision of the facts the detailed answers state (micro-averaged), and per
        attribute the share of objects whose answer states it correctly."""
        totals = {"reference": 0, "recalled": 0, "stated": 0, "correct": 0, "unsettled": 0, "unparsed": 0}
        attributes = dict.fromkeys(ATTRIBUTES, 0)
        parts = [0, 0]
        scenes: dict = {}
        for a in answers:
            meta = a.request.meta
            scene = scenes.get(meta["image_id"]) or scenes.setdefault(meta["image_id"],
                                                                      generate_scene(meta["image_id"], self.config))
            score = score_description(scene, scene.object(meta["object_id"]), a.text)
            for key in totals:
                totals[key] += getattr(score, key)
            for kind, ok in score.attributes.items():
                attributes[kind] += ok
            parts[0] += score.parts[0]
            parts[1] += score.parts[1]
            per[a.request.key].update(recall=_or_none(score.recall), precision=_or_none(score.precision),
                                      unparsed=score.unparsed,
                                      wrong=[f"{f.kind}={f.value}" for f, v in score.verdicts if v is False])
        n = len(answers)
        return {"recall": _ratio(totals["recalled"], totals["reference"]),
                "precision": _ratio(totals["correct"], totals["stated"]),
                **{kind: _ratio(hits, n) for kind, hits in attributes.items()},
                "parts": _ratio(*parts), "descriptions": n, **totals}

    @staticmethod
    def _heldout(answers: list[Answer], per: dict) -> dict:
        """Accuracy on the held-out wordings: yes/no from the answer's first word, else exact match;
        ``pair_consistency``: relation pairs answered right in both orders."""
        by_type: dict[str, list[bool]] = {}
        pairs: dict[tuple, list[bool]] = {}
        for a in answers:
            meta = a.request.meta
            if is_yes_no(meta["type"]):
                correct = yes_no_answer(a.text) == meta["answer"].lower()
            else:
                correct = exact_match(a.text, meta["answer"])
            per[a.request.key].update(correct=correct)
            by_type.setdefault(meta["type"], []).append(correct)
            if "pair" in meta:
                pairs.setdefault((meta["image_id"], meta["type"], *meta["pair"]), []).append(correct)
        hits = [c for cs in by_type.values() for c in cs]
        return {"accuracy": _ratio(sum(hits), len(hits)), "questions": len(hits),
                "by_type": {t: _ratio(sum(cs), len(cs)) for t, cs in sorted(by_type.items())},
                "counts": {t: len(cs) for t, cs in sorted(by_type.items())}, "pairs": len(pairs),
                "pair_consistency": _ratio(sum(all(cs) for cs in pairs.values()), len(pairs))}

    def score(self, answers: list[Answer]) -> Scores:
        per, rows = {}, []
        for a in answers:
            meta = a.request.meta
            if meta["type"] in ("short_caption", "description") or meta.get("heldout_wording"):
                per[a.request.key] = {"type": meta["type"], "gold": meta["answer"]}  # scored below
                continue
            correct = exact_match(a.text, meta["answer"])
            per[a.request.key] = {"type": meta["type"], "gold": meta["answer"], "correct": correct}
            distractor = bool(meta.get("same_colour_distractor") or meta.get("same_category_distractor"))
            rows.append((meta["type"], correct, distractor, size_bucket(meta["area_fraction"]),
                         meta["answer"].lower()))
        captions = [a for a in answers if a.request.meta["type"] == "short_caption"]
        cider = float("nan")
        if captions:
            cider = caption_scores({a.request.key: [a.request.meta["answer"]] for a in captions},
                                   {a.request.key: strip_stop(a.text) for a in captions}, ("CIDEr",))["CIDEr"]

        def accuracy(select) -> tuple[float, int]:
            hits = [c for r in rows if select(r) for c in [r[1]]]
            return (sum(hits) / len(hits) if hits else float("nan")), len(hits)

        groups = {g: accuracy(lambda r, types=types: r[0] in types) for g, types in GROUPS.items()}
        metrics: dict = {g: v[0] for g, v in groups.items()}
        metrics["cider"] = cider
        metrics["describe"] = self._descriptions([a for a in answers if a.request.meta["type"] == "description"], per)
        metrics["heldout_wording"] = self._heldout([a for a in answers if a.request.meta.get("heldout_wording")], per)
        metrics["counts"] = {g: v[1] for g, v in groups.items()}
        metrics["yesno_positive"] = accuracy(lambda r: r[0] == "pos_neg" and r[4] == "yes")[0]
        metrics["yesno_negative"] = accuracy(lambda r: r[0] == "pos_neg" and r[4] == "no")[0]
        metrics["by_type"] = {t: accuracy(lambda r, t=t: r[0] == t)[0] for t in sorted({r[0] for r in rows})}
        splits = {"with distractors": lambda r: r[2], "without distractors": lambda r: not r[2]}
        splits.update({f"{name} regions": (lambda r, name=name: r[3] == name) for _, name in SIZE_BUCKETS})
        metrics["splits"] = {s: {g: accuracy(lambda r, f=f, types=types: f(r) and r[0] in types)[0]
                                 for g, types in GROUPS.items()} for s, f in splits.items()}
        header = ["split", *GROUPS]
        table_rows = [["all", *(metrics[g] for g in GROUPS)]]
        table_rows += [[s, *(v[g] for g in GROUPS)] for s, v in metrics["splits"].items()]
        table = markdown_table(header, [[r[0], *(x * 100 if isinstance(x, float) else x for x in r[1:])]
                                        for r in table_rows])
        table += f"\n\n(exact match, %; short-caption CIDEr {cider:.3f} on {len(captions)} regions)"
        table += "\n\n" + _extra_tables(metrics["describe"], metrics["heldout_wording"])
        d = metrics["describe"]
        extra = {"describe_recall": d["recall"], "describe_precision": d["precision"], "texture": d["texture"],
                 "size": d["size"], "position": d["position"], "heldout_wording": metrics["heldout_wording"]["accuracy"]}
        result = "RESULT " + " ".join(f"{k}={v:.4f}" for k, v in
                                      [*((k, metrics[k]) for k in (*GROUPS, "cider")), *extra.items()])
        return Scores(metrics, table, per, result_line=result)


def _extra_tables(describe: dict, heldout: dict) -> str:
    """The description and held-out-wording tables (%)."""
    pct = [describe[k] * 100 for k in ("recall", "precision", *ATTRIBUTES, "parts")]
    table = markdown_table(["descriptions", "recall", "precision", *ATTRIBUTES, "parts"],
                           [[str(describe["descriptions"]), *pct]])
    table += (f"\n\n(facts of the detailed answers judged against the scene, %: {describe['recalled']} of "
              f"{describe['reference']} reference facts stated, {describe['correct']} of {describe['stated']} "
              f"stated facts true, {describe['unsettled']} unsettled, {describe['unparsed']} sentences unparsed)\n\n")
    rows = [["all", heldout["questions"], heldout["accuracy"] * 100]]
    rows += [[t, heldout["counts"][t], v * 100] for t, v in heldout["by_type"].items()]
    rows.append(["relation pairs right both ways", heldout["pairs"], heldout["pair_consistency"] * 100])
    table += markdown_table(["held-out wording", "questions", "accuracy"], rows)
    return table + "\n\n(accuracy, %, on wordings training never uses; yes/no relations asked in both orders)"
