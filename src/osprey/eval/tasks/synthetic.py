"""The held-out synthetic benchmark: every question of ``eval_questions.jsonl`` plus short captions.

The split is generated with the synthetic writer from test seeds (``test_seeds``: >= 10**9, never a
training seed). Questions are rendered as the training parsers render them (short-form and part-level:
the official "Ther are N part regions" listing and the single-word limit; positive/negative, category
naming and descriptions: the overview prefix and the question). Scores are exact match after
normalisation (lower-case, no punctuation, no articles), grouped as category, colour, part (part
naming), yesno, relation, plus CIDEr of short captions; tables split by distractors and region size.
"""

from __future__ import annotations

import json
from pathlib import Path

from osprey.data.prompts import SHORT_ANSWER_LIMIT, region_count_sentence
from osprey.eval.caption_metrics import caption_scores
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


def render_question(line: dict) -> str:
    """The full first user turn for an eval line, as the training parser renders its subset."""
    question = line["question"]
    subset = line["subset"]
    if subset in ("short_form", "part_level"):
        tags = [f"<region{k}>" for k in range(1, len(line["annotation"]) + 1)]
        return OVERVIEW + region_count_sentence(tags) + question.replace("<", "").replace(">", "") + SHORT_ANSWER_LIMIT
    return OVERVIEW + question


class SyntheticBenchmark(Task):
    name = "synthetic"

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
                meta={"type": line["type"], "answer": line["answer"], **line["metadata"]},
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
        return out

    def score(self, answers: list[Answer]) -> Scores:
        per, rows = {}, []
        for a in answers:
            meta = a.request.meta
            if meta["type"] in ("short_caption", "description"):  # free text: captions get CIDEr below
                per[a.request.key] = {"type": meta["type"], "gold": meta["answer"]}
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
        result = "RESULT " + " ".join(f"{k}={metrics[k]:.4f}" for k in (*GROUPS, "cider"))
        return Scores(metrics, table, per, result_line=result)
