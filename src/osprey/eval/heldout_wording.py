"""Questions of the synthetic benchmark in wordings training never uses (``templates.HELDOUT``).

Every skill of the standard benchmark is asked again in other words: category, colour, texture,
size, position, part name and part colour, "is this a X?", and the two-region relations as yes/no
questions ("Is <region1> to the left of <region2>?", above, below, larger, smaller). Gold answers
come from the answer rules of :mod:`osprey.synthetic.facts`; a question the pixels would not settle
is not asked. Each relation question is asked about a pair in both orders, so a model that answers
"Yes" to everything scores half, and ``pair_consistency`` (both orders right) stays at zero.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from osprey.synthetic import facts, templates
from osprey.synthetic.questions import QAItem, RegionRef
from osprey.synthetic.world import Scene, SceneObject

__all__ = ["RELATION_TYPES", "YES_NO_TYPES", "heldout_items", "is_yes_no", "yes_no_answer"]

# Yes/no relation type -> (fact rule, the rule's value that makes the answer "Yes").
_RELATION_RULES: dict[str, tuple[Callable[[Scene, SceneObject, SceneObject], str | None], str]] = {
    "left_of": (facts.horizontal_relation, "left"),
    "right_of": (facts.horizontal_relation, "right"),
    "above": (facts.vertical_relation, "above"),
    "below": (facts.vertical_relation, "below"),
    "larger_than": (lambda scene, a, b: facts.size_relation(a, b), "larger"),
    "smaller_than": (lambda scene, a, b: facts.size_relation(a, b), "smaller"),
}
RELATION_TYPES = tuple(_RELATION_RULES)
YES_NO_TYPES = ("pos_neg", *RELATION_TYPES)
_AXES = (("left_of", "right_of"), ("above", "below"), ("larger_than", "smaller_than"))
PAIRS_PER_AXIS = 2  # relation pairs per axis and scene (each asked in both orders)


def is_yes_no(qtype: str) -> bool:
    return qtype in YES_NO_TYPES


def yes_no_answer(text: str) -> str | None:
    """"yes" / "no" from an answer's first word ("Yes, it is." -> "yes"), else None."""
    words = text.strip().lower().replace(",", " ").replace(".", " ").split()
    return words[0] if words and words[0] in ("yes", "no") else None


def _rng(scene: Scene) -> random.Random:
    return random.Random(f"osprey-heldout-wording:{scene.seed}")


def _item(style: str, qtype: str, template: str, answer: str, regions: tuple[RegionRef, ...], meta: dict) -> QAItem:
    """``style`` says how the benchmark renders it: as a short-form, part-level or positive/negative turn."""
    return QAItem(subset=style, qtype=qtype, template=template, answer=answer, regions=regions,
                  meta={**meta, "heldout_wording": True})


def _object_items(scene: Scene, obj: SceneObject, rng: random.Random) -> list[QAItem]:
    answers = {"category": obj.category, "colour": facts.colour_answer(obj),
               "texture": facts.texture_answer(scene, obj), "size": facts.size_answer(scene, obj),
               "position": facts.position_answer(scene, obj)}
    meta = facts.object_meta(scene, obj)
    ref = (RegionRef(obj.id),)
    items = [_item("short_form", q, rng.choice(templates.HELDOUT[q]), a, ref, meta) for q, a in answers.items() if a]
    positive = rng.random() < 0.5
    others = [c for c in scene.config.categories if c != obj.category]
    asked = obj.category if positive or not others else rng.choice(others)
    template = templates.fill(rng.choice(templates.HELDOUT["pos_neg"]), category=asked,
                              article=templates.a_or_an(asked))
    items.append(_item("positive_negative", "pos_neg", template, "Yes" if asked == obj.category else "No", ref,
                       {**meta, "asked_category": asked}))
    for part in obj.parts:
        if not facts.part_answerable(scene, part):
            continue
        qtype = rng.choice(("part_name", "part_colour"))
        template = templates.fill(rng.choice(templates.HELDOUT[qtype]), category=obj.category)
        answer = part.name if qtype == "part_name" else part.colour
        items.append(_item("part_level", qtype, template, answer, (RegionRef(obj.id, part.name),),
                           facts.part_meta(scene, obj, part)))
    return items


def _relation_items(scene: Scene, rng: random.Random) -> list[QAItem]:
    """Per axis, up to PAIRS_PER_AXIS pairs with a clear relation, each asked (a, b) and (b, a)."""
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a.id < b.id]
    items = []
    for axis in _AXES:
        rng.shuffle(pairs)
        qtype = rng.choice(axis)
        rule, yes = _RELATION_RULES[qtype]
        clear = [(a, b) for a, b in pairs if rule(scene, a, b) is not None][:PAIRS_PER_AXIS]
        template = rng.choice(templates.HELDOUT[qtype])
        for a, b in clear:
            for first, second in ((a, b), (b, a)):
                answer = "Yes" if rule(scene, first, second) == yes else "No"
                meta = {**facts.object_meta(scene, first), "other_object_id": second.id,
                        "region_areas": [first.area, second.area], "pair": [a.id, b.id]}
                items.append(_item("short_form", qtype, template, answer,
                                   (RegionRef(first.id), RegionRef(second.id)), meta))
    return items


def heldout_items(scene: Scene) -> list[QAItem]:
    """The held-out-wording questions of one scene (a pure function of the scene)."""
    rng = _rng(scene)
    items = [q for obj in scene.objects for q in _object_items(scene, obj, rng)]
    return items + _relation_items(scene, rng)
