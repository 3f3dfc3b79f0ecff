"""The bundled model binds regions by their order: swapping two regions in a question swaps the answer."""

from __future__ import annotations

import numpy as np
import pytest

from osprey.eval.tasks.synthetic import render_turn
from osprey.model.loading import bundled_available
from osprey.synthetic import facts
from osprey.synthetic.seeds import test_seeds as held_out_seeds
from osprey.synthetic.templates import SHORT_FORM_CORE
from osprey.synthetic.world import generate_scene

pytestmark = pytest.mark.skipif(not bundled_available(), reason="bundled model not installed")
OPPOSITE = {"above": "below", "below": "above", "larger": "smaller", "smaller": "larger"}
RULES = {"relation_vertical": facts.vertical_relation,
         "relation_size": lambda scene, a, b: facts.size_relation(a, b)}


@pytest.fixture(scope="module")
def predictor():
    from osprey.inference.predictor import RegionPredictor
    from osprey.model.loading import load_model

    model, tokenizer, _ = load_model("bundled")
    return RegionPredictor(model, tokenizer)


def _ask(predictor, scene, questions: list[tuple[str, tuple[int, int]]]) -> list[str]:
    """Answers to (question, (object id, object id)) on one scene, in one batched generation."""
    from osprey.inference.predictor import Query
    from osprey.model.generation import DecodingOptions

    ids = sorted({i for _, pair in questions for i in pair})
    masks = np.stack([scene.object(i).mask for i in ids])
    queries = [Query(render_turn("short_form", q, 2), tuple(ids.index(i) for i in pair), prefix="")
               for q, pair in questions]
    answers = predictor.ask(predictor.encode(scene.image), masks, queries, DecodingOptions(max_new_tokens=4))
    return [str(a).strip().lower().rstrip(".") for a in answers]


def test_swapping_two_regions_swaps_the_relation_answer(predictor):
    """For pairs whose vertical or size relation is clear, the question is asked with the regions in
    both orders in one batch: the two answers must be opposites (a model that ignores which region is
    <region1> answers both the same) and match the masks' geometry."""
    swapped = right = total = 0
    for seed in held_out_seeds(6, 555):
        scene = generate_scene(seed)
        questions, gold = [], []
        for qtype, rule in RULES.items():
            template = SHORT_FORM_CORE[qtype][0]
            pairs = [(a, b) for a in scene.objects for b in scene.objects if a.id < b.id and rule(scene, a, b)][:2]
            for a, b in pairs:
                for first, second in ((a, b), (b, a)):
                    questions.append((template.format("<region1>", "<region2>"), (first.id, second.id)))
                    gold.append(rule(scene, first, second))
        answers = _ask(predictor, scene, questions)
        for k in range(0, len(answers), 2):
            assert answers[k] in OPPOSITE and answers[k + 1] in OPPOSITE, answers[k: k + 2]
            swapped += answers[k + 1] == OPPOSITE[answers[k]]
            right += (answers[k], answers[k + 1]) == (gold[k], gold[k + 1])
            total += 1
    assert total >= 12
    assert swapped / total >= 0.9, f"{swapped} of {total} pairs swapped their answer with the region order"
    assert right / total >= 0.9, f"{right} of {total} pairs right in both orders"
