"""Template question/answer material for every Osprey-724K subset, from one scene, without an LLM.

Per scene and subset this builds a ``SubsetRecord``: the regions of one official record (its
``annotation`` list, in order) and its turns. Every turn is a ``QAItem`` that carries machine-readable
metadata (question type, gold answer, region ids, distractors, area) so the held-out benchmark can score
exact match per type and split the scores by distractor and size.

Gold answers come from ``facts.py`` and are derivable from the pixels; a question whose answer the pixels
would not settle is not asked. Each subset draws from its own random stream, so generating one subset
alone gives the same text as generating all of them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from osprey.synthetic import facts, templates
from osprey.synthetic.seeds import TEST_SEED_OFFSET
from osprey.synthetic.vocabulary import CATEGORIES, confusable_categories
from osprey.synthetic.world import Scene, SceneObject, ScenePart
from osprey.text.prompts import SHORT_DESCRIPTION_QUESTION

__all__ = [
    "ALL_SUBSETS",
    "EVAL_SUBSETS",
    "QAItem",
    "RegionRef",
    "SubsetRecord",
    "build_records",
    "category_naming_record",
    "conversation_record",
    "describe_object",
    "detail_description_record",
    "eval_items",
    "part_level_record",
    "positive_negative_record",
    "short_form_record",
]

ALL_SUBSETS: tuple[str, ...] = (
    "short_form",
    "conversation",
    "detail_description",
    "part_level",
    "positive_negative",
    "category_naming",
)
# Subsets whose turns stand alone (a conversation turn depends on the ones before it).
EVAL_SUBSETS: tuple[str, ...] = (
    "short_form",
    "part_level",
    "positive_negative",
    "category_naming",
    "detail_description",
)


@dataclass(frozen=True)
class RegionRef:
    """A region of a scene: a whole object, or one named part of it."""

    object_id: int
    part: str | None = None

    def mask(self, scene: Scene) -> np.ndarray:
        """(H, W) bool visible pixels of the region."""
        obj = scene.object(self.object_id)
        return obj.mask if self.part is None else obj.part(self.part).mask


@dataclass(frozen=True)
class QAItem:
    """One question and its gold answer. ``template`` holds ``{0}``, ``{1}`` for ``regions[0]``, ..."""

    subset: str
    qtype: str
    template: str
    answer: str
    regions: tuple[RegionRef, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def question(self, numbering: Mapping[RegionRef, int] | None = None) -> str:
        """The question with ``<regionK>`` tags; K from ``numbering`` (1-based), else the item's own order."""
        numbers = [numbering[r] if numbering is not None else k for k, r in enumerate(self.regions, start=1)]
        return self.template.format(*(f"<region{n}>" for n in numbers))


@dataclass(frozen=True)
class SubsetRecord:
    """The content of one official per-image record: ``regions`` is its ``annotation`` list, in order."""

    subset: str
    regions: tuple[RegionRef, ...]
    turns: tuple[QAItem, ...]
    descriptions: tuple[str, ...] = ()  # detail_description only: one paragraph per region, aligned

    def numbering(self) -> dict[RegionRef, int]:
        return {r: k for k, r in enumerate(self.regions, start=1)}

    def conversations(self) -> list[dict[str, str]]:
        """Official ``conversations``: alternating human question / gpt answer."""
        numbering = self.numbering()
        turns: list[dict[str, str]] = []
        for item in self.turns:
            turns.append({"from": "human", "value": item.question(numbering)})
            turns.append({"from": "gpt", "value": item.answer})
        return turns

    def description_lines(self) -> list[str]:
        """Official ``description``: ``"<regionK>: text"`` aligned with the regions."""
        return [f"<region{k}>: {text}" for k, text in enumerate(self.descriptions, start=1)]


def _wordings(scene: Scene) -> templates.Wordings:
    """Every training wording for a training scene; the core wordings (the bundled model's training)
    for a held-out test scene, so the standard benchmark is unchanged by new paraphrases."""
    return templates.wordings(training=scene.seed < TEST_SEED_OFFSET)


def _rng(scene: Scene, subset: str) -> random.Random:
    return random.Random(f"osprey-synthetic-questions:{subset}:{scene.seed}")


def _item(
    subset: str, qtype: str, template: str, answer: str, regions: tuple[RegionRef, ...], meta: dict
) -> QAItem:
    return QAItem(subset=subset, qtype=qtype, template=template, answer=answer, regions=regions, meta=meta)


def _pair_meta(scene: Scene, a: SceneObject, b: SceneObject) -> dict[str, Any]:
    meta = facts.object_meta(scene, a)
    meta["other_object_id"] = b.id
    meta["region_areas"] = [a.area, b.area]
    return meta


# ------------------------------------------------------------------------------------------ short form


def _object_questions(scene: Scene, obj: SceneObject, rng: random.Random) -> list[QAItem]:
    answers = {
        "category": obj.category,
        "colour": facts.colour_answer(obj),
        "texture": facts.texture_answer(scene, obj),
        "size": facts.size_answer(scene, obj),
        "position": facts.position_answer(scene, obj),
    }
    ref = (RegionRef(obj.id),)
    meta = facts.object_meta(scene, obj)
    return [
        _item("short_form", qtype, rng.choice(_wordings(scene).short_form[qtype]), answer, ref, meta)
        for qtype, answer in answers.items()
        if answer is not None
    ]


_RELATIONS: dict[str, Callable[[Scene, SceneObject, SceneObject], str | None]] = {
    "relation_horizontal": facts.horizontal_relation,
    "relation_vertical": facts.vertical_relation,
    "relation_size": lambda scene, a, b: facts.size_relation(a, b),
}


def _relation_questions(scene: Scene, rng: random.Random, limit: int) -> list[QAItem]:
    """Up to ``limit`` relation questions, the three kinds in turn, each on a fresh pair where it is clear."""
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a.id != b.id]
    rng.shuffle(pairs)
    kinds = list(_RELATIONS)
    offset = rng.randrange(len(kinds))
    used: set[frozenset[int]] = set()
    items: list[QAItem] = []
    for k in range(limit):
        qtype = kinds[(offset + k) % len(kinds)]
        for a, b in pairs:
            answer = _RELATIONS[qtype](scene, a, b)
            if answer is None or frozenset((a.id, b.id)) in used:
                continue
            used.add(frozenset((a.id, b.id)))
            regions = (RegionRef(a.id), RegionRef(b.id))
            template = rng.choice(_wordings(scene).short_form[qtype])
            items.append(_item("short_form", qtype, template, answer, regions, _pair_meta(scene, a, b)))
            break
    return items


def short_form_record(scene: Scene) -> SubsetRecord:
    """Category, colour, texture, size and position of every object, plus relations between pairs."""
    rng = _rng(scene, "short_form")
    items = [q for obj in scene.objects for q in _object_questions(scene, obj, rng)]
    items += _relation_questions(scene, rng, limit=len(scene.objects))
    rng.shuffle(items)
    return SubsetRecord("short_form", tuple(RegionRef(o.id) for o in scene.objects), tuple(items))


# -------------------------------------------------------------------------------------- descriptions


def _part_list(obj: SceneObject) -> str:
    """The mostly visible parts as a phrase: "a red shade, a pole and a base" (accent colours named)."""
    phrases = []
    for part in obj.parts:
        if part.visibility < facts.MIN_PART_VISIBILITY:
            continue
        shape = next(p for p in CATEGORIES[obj.category].parts if p.name == part.name)
        colour = f"{part.colour} " if part.colour != obj.colour else ""
        phrases.append(
            f"two {colour}{part.name}"
            if shape.plural
            else f"{templates.a_or_an(colour or part.name)} {colour}{part.name}"
        )
    if not phrases:
        return ""
    return templates.join_and(phrases)


_TEXTURE_PHRASES = {"solid": "", "striped": " with dark diagonal stripes", "dotted": " covered in dark dots"}
_POSITION_PHRASES = {
    ("middle", "center"): "in the center of the image",
    ("middle", "left"): "on the left side of the image",
    ("middle", "right"): "on the right side of the image",
    ("top", "center"): "at the top of the image",
    ("bottom", "center"): "at the bottom of the image",
}


def describe_object(scene: Scene, obj: SceneObject, rng: random.Random | None = None) -> str:
    """One paragraph: category, size, colour, texture, parts, position, relations and occlusion."""
    rng = rng or random.Random(0)
    article = templates.a_or_an(obj.size)
    sentences = [
        f"{article.capitalize()} {obj.size} {obj.colour} {obj.category}{_TEXTURE_PHRASES[obj.texture]}."
    ]
    parts = _part_list(obj)
    hidden = [p.name for p in obj.parts if p.visibility < facts.MIN_PART_VISIBILITY]
    if hidden:
        verb = "is" if len(hidden) == 1 else "are"
        sentences.append(f"It has {parts}; its {templates.join_and(hidden)} {verb} mostly hidden.")
    else:
        sentences.append(f"It has {parts}.")
    row, column = facts.position_words(scene, obj)
    where = _POSITION_PHRASES.get((row, column), f"in the {row} {column} part of the image")
    sentences.append(f"It is {where}.")
    relations = []
    others = [o for o in scene.objects if o.id != obj.id]
    rng.shuffle(others)
    for other in others:
        phrase = facts.noun_phrase(scene, other)
        relation = facts.horizontal_relation(scene, obj, other) or facts.vertical_relation(scene, obj, other)
        if phrase is None or relation is None:
            continue
        relation = {"left": "to the left of", "right": "to the right of"}.get(relation, relation)
        relations.append(f"{relation} {phrase}")
        if len(relations) == 2:
            break
    if relations:
        sentences.append(f"It is {' and '.join(relations)}.")
    occluders = [facts.noun_phrase(scene, scene.object(i)) or "another object" for i in obj.occluded_by]
    if occluders:
        sentences.append(f"It is partly hidden behind {templates.join_and(list(dict.fromkeys(occluders)))}.")
    covered = [o for o in scene.objects if obj.id in o.occluded_by]
    if covered:
        names = [facts.noun_phrase(scene, o) or "another object" for o in covered]
        sentences.append(f"It partly covers {templates.join_and(list(dict.fromkeys(names)))}.")
    return " ".join(sentences)


def detail_description_record(scene: Scene) -> SubsetRecord:
    rng = _rng(scene, "detail_description")
    regions = tuple(RegionRef(o.id) for o in scene.objects)
    texts = tuple(describe_object(scene, o, rng) for o in scene.objects)
    items = tuple(
        _item(
            "detail_description",
            "description",
            templates.DESCRIPTION_QUESTION,
            text,
            (ref,),
            facts.object_meta(scene, scene.object(ref.object_id)),
        )
        for ref, text in zip(regions, texts)
    )
    return SubsetRecord("detail_description", regions, items, descriptions=texts)


# ------------------------------------------------------------------------------------- conversations


def _short_name(obj: SceneObject) -> str:
    texture = "" if obj.texture == "solid" else f" {obj.texture}"
    return f"{obj.size} {obj.colour}{texture} {obj.category}"


def _which(scene: Scene, a: SceneObject, b: SceneObject, first_wins: bool) -> str:
    """How an answer names one of two regions: "The red lamp" if that is unambiguous, else by order."""
    winner, loser = (a, b) if first_wins else (b, a)
    phrase = facts.noun_phrase(scene, winner)
    if phrase and facts.noun_phrase(scene, loser) != phrase:
        return phrase[0].upper() + phrase[1:]
    return "The first one" if first_wins else "The second one"


def _pair_turns(
    scene: Scene, a: SceneObject, b: SceneObject, rng: random.Random
) -> list[tuple[str, str, str]]:
    """(kind, template, answer) comparison turns about regions {0} = a and {1} = b."""
    turns = []
    t = rng.choice
    if a.colour == b.colour:
        turns.append(("same_colour", t(_wordings(scene).conversation["same_colour"]), f"Yes, both are {a.colour}."))
    elif a.category != b.category:
        answer = f"No, the {a.category} is {a.colour} and the {b.category} is {b.colour}."
        turns.append(("same_colour", t(_wordings(scene).conversation["same_colour"]), answer))
    else:
        answer = f"No, the first one is {a.colour} and the second one is {b.colour}."
        turns.append(("same_colour", t(_wordings(scene).conversation["same_colour"]), answer))
    if a.category == b.category:
        answer = f"Yes, both are {templates.plural(a.category)}."
    else:
        answer = f"No, one is {templates.a_or_an(a.category)} {a.category} and the other is {templates.a_or_an(b.category)} {b.category}."
    turns.append(("same_category", t(_wordings(scene).conversation["same_category"]), answer))
    horizontal = facts.horizontal_relation(scene, a, b)
    if horizontal:
        answer = f"{_which(scene, a, b, horizontal == 'left')} is further to the left."
        turns.append(("further_left", t(_wordings(scene).conversation["further_left"]), answer))
    vertical = facts.vertical_relation(scene, a, b)
    if vertical:
        answer = f"{_which(scene, a, b, vertical == 'above')} is higher up."
        turns.append(("higher", t(_wordings(scene).conversation["higher"]), answer))
    larger = facts.size_relation(a, b)
    if larger:
        answer = f"{_which(scene, a, b, larger == 'larger')} looks larger."
        turns.append(("larger", t(_wordings(scene).conversation["larger"]), answer))
    return turns


def _pick_conversation_objects(scene: Scene, rng: random.Random) -> list[SceneObject]:
    """2-3 objects, the first two sharing a colour or a category when the scene has such a pair."""
    pairs = [
        (a, b)
        for a in scene.objects
        for b in scene.objects
        if a.id < b.id and (a.colour == b.colour or a.category == b.category)
    ]
    first = list(rng.choice(pairs)) if pairs else rng.sample(list(scene.objects), min(2, len(scene.objects)))
    rng.shuffle(first)
    rest = [o for o in scene.objects if o not in first]
    return first + rng.sample(rest, min(1, len(rest)))


def conversation_record(scene: Scene) -> SubsetRecord:
    """A multi-turn dialogue about 2-3 regions: what they are, how they compare, their parts, occlusion."""
    rng = _rng(scene, "conversation")
    chosen = _pick_conversation_objects(scene, rng)
    refs = tuple(RegionRef(o.id) for o in chosen)
    turns: list[tuple[str, str, str]] = []
    a = chosen[0]
    turns.append(
        (
            "identify",
            rng.choice(_wordings(scene).conversation["identify_first"]),
            f"It is {templates.a_or_an(a.size)} {_short_name(a)}.",
        )
    )
    if len(chosen) > 1:
        b = chosen[1]
        answer = f"It is {templates.a_or_an(b.size)} {_short_name(b)}."
        turns.append(("identify", rng.choice(_wordings(scene).conversation["identify_next"]), answer))
        turns += _pair_turns(scene, a, b, rng)
    parts = _part_list(a)
    if parts:
        turns.append(("parts", rng.choice(_wordings(scene).conversation["parts"]), f"I can see {parts}."))
    if a.spec.accent_colour and a.part(a.spec.accent_part).visibility >= facts.MIN_PART_VISIBILITY:
        template = templates.fill(rng.choice(_wordings(scene).conversation["accent"]), part=a.spec.accent_part)
        turns.append(("accent", template, f"The {a.spec.accent_part} is {a.spec.accent_colour}."))
    if len(chosen) > 2:
        c = chosen[2]
        template = rng.choice(_wordings(scene).conversation["occlusion"])
        if c.occluded_by:
            names = dict.fromkeys(
                facts.noun_phrase(scene, scene.object(i)) or "another object" for i in c.occluded_by
            )
            answer = f"It is partly hidden behind {templates.join_and(list(names))}."
            answer = ("Yes. " if template.startswith("Is anything") else "No. ") + answer
        else:
            answer = (
                "No, it is fully visible."
                if template.startswith("Is anything")
                else "Yes, it is fully visible."
            )
        turns.append(("occlusion", template, answer))
    meta = facts.object_meta(scene, a)
    meta["region_ids"] = [o.id for o in chosen]
    items = tuple(
        _item("conversation", f"conversation_{kind}", template, answer, refs, meta)
        for kind, template, answer in turns
    )
    return SubsetRecord("conversation", refs, items)


# ---------------------------------------------------------------------------------------- part level


def part_level_record(scene: Scene) -> SubsetRecord:
    """Regions are PART masks: the part's name, plus one of its object, colour or texture."""
    rng = _rng(scene, "part_level")
    refs: list[RegionRef] = []
    items: list[QAItem] = []
    for obj in scene.objects:
        for part in obj.parts:
            if not facts.part_answerable(scene, part):
                continue
            ref = (RegionRef(obj.id, part.name),)
            meta = facts.part_meta(scene, obj, part)
            refs.append(ref[0])
            name_template = templates.fill(
                rng.choice(_wordings(scene).part_level["part_name"]), category=obj.category
            )
            items.append(_item("part_level", "part_name", name_template, part.name, ref, meta))
            extra = {"part_object": obj.category, "part_colour": part.colour}
            texture = facts.part_texture_answer(scene, part)
            if texture is not None:
                extra["part_texture"] = texture
            qtype = rng.choice(sorted(extra))
            items.append(
                _item("part_level", qtype, rng.choice(_wordings(scene).part_level[qtype]), extra[qtype], ref, meta)
            )
    return SubsetRecord("part_level", tuple(refs), tuple(items))


# --------------------------------------------------------------------------------- positive/negative


def _negative_category(scene: Scene, obj: SceneObject, rng: random.Random) -> tuple[str, str]:
    """(category, source): another category in the image, else a look-alike, else any in the world."""
    world = [c for c in scene.config.categories if c != obj.category]
    in_image = sorted({o.category for o in scene.objects} - {obj.category})
    confusable = [c for c in confusable_categories(obj.category) if c in world]
    roll = rng.random()
    if in_image and roll < 0.5:
        return rng.choice(in_image), "in_image"
    if confusable and roll < 0.85:
        return rng.choice(confusable), "confusable"
    return rng.choice(world), "random"


def positive_negative_record(scene: Scene) -> SubsetRecord:
    """One yes/no category question per object, region order = question order (the loader needs that)."""
    rng = _rng(scene, "positive_negative")
    items = []
    for obj in scene.objects:
        meta = facts.object_meta(scene, obj)
        positive = rng.random() < 0.5 or len(scene.config.categories) < 2
        if positive:
            asked, source = obj.category, "positive"
        else:
            asked, source = _negative_category(scene, obj, rng)
        meta.update(asked_category=asked, negative_source=source if not positive else None)
        template = templates.fill(
            rng.choice(_wordings(scene).positive_negative), category=asked, article=templates.a_or_an(asked)
        )
        items.append(
            _item(
                "positive_negative",
                "pos_neg",
                template,
                "Yes" if positive else "No",
                (RegionRef(obj.id),),
                meta,
            )
        )
    return SubsetRecord("positive_negative", tuple(RegionRef(o.id) for o in scene.objects), tuple(items))


# ---------------------------------------------------------------------------------- category naming


def category_naming_record(scene: Scene) -> SubsetRecord:
    """Stage-2 COCO-style: the answer is the category name (the LVIS/PACO evaluation prompt)."""
    items = tuple(
        _item(
            "category_naming",
            "category_naming",
            templates.CATEGORY_NAMING_QUESTION,
            o.category,
            (RegionRef(o.id),),
            facts.object_meta(scene, o),
        )
        for o in scene.objects
    )
    return SubsetRecord("category_naming", tuple(RegionRef(o.id) for o in scene.objects), items)


_BUILDERS: dict[str, Callable[[Scene], SubsetRecord]] = {
    "short_form": short_form_record,
    "conversation": conversation_record,
    "detail_description": detail_description_record,
    "part_level": part_level_record,
    "positive_negative": positive_negative_record,
    "category_naming": category_naming_record,
}


def build_records(
    scene: Scene, subsets: tuple[str, ...] | list[str] = ALL_SUBSETS
) -> dict[str, SubsetRecord]:
    """The record of each requested subset for one scene."""
    unknown = [s for s in subsets if s not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown subsets {unknown}; expected some of {ALL_SUBSETS}")
    return {s: _BUILDERS[s](scene) for s in subsets}


def eval_items(records: Mapping[str, SubsetRecord]) -> list[QAItem]:
    """The stand-alone questions of the records (conversation turns depend on context: left out)."""
    return [item for subset in EVAL_SUBSETS if subset in records for item in records[subset].turns]


# ------------------------------------------------------------------------------------- short caption
# Added for the held-out benchmark's captioning score; not part of ALL_SUBSETS, so the files the
# writer produces (and every existing record) are unchanged. The question is the demo's
# short-description prompt (SHORT_DESCRIPTION_QUESTION).


def short_caption(obj: SceneObject) -> str:
    """"a large cyan striped car": size, colour, texture (unless solid) and category."""
    return f"{templates.a_or_an(obj.size)} {_short_name(obj)}"


def short_caption_record(scene: Scene) -> SubsetRecord:
    """One short-caption question per object (the demo's short-description prompt)."""
    items = tuple(
        _item("short_caption", "short_caption", SHORT_DESCRIPTION_QUESTION.replace("<region1>", "{0}"),
              short_caption(o), (RegionRef(o.id),), facts.object_meta(scene, o))
        for o in scene.objects
    )
    return SubsetRecord("short_caption", tuple(RegionRef(o.id) for o in scene.objects), items)


# ----------------------------------------------------------------------------------- region captions
# Stage-2 region captions in the Visual Genome layout (one short caption per annotation), the synthetic
# counterpart of Osprey's stage-2 RefCOCO/VG/part sources: they name what the region tokens must
# carry (category, colour, texture, size, position; a part's name, colour and object).

# (Its own name: an earlier version reused _POSITION_PHRASES here, which silently replaced the
# description phrases above, so every paragraph said "in the middle center part of the image".)
_CAPTION_POSITIONS = {"center": "in the center", "left": "on the left", "right": "on the right"}


def region_caption(scene: Scene, obj: SceneObject) -> str:
    """"a large cyan striped car at the top left" (the position only where it is clear)."""
    position = facts.position_answer(scene, obj)
    where = "" if position is None else " " + _CAPTION_POSITIONS.get(position, f"at the {position}")
    return short_caption(obj) + where


def part_caption(scene: Scene, obj: SceneObject, part: ScenePart) -> str:
    """"the red striped fin of a rocket" (the texture only where it is visible)."""
    texture = facts.part_texture_answer(scene, part)
    texture = "" if texture in (None, "solid") else f" {texture}"
    return f"the {part.colour}{texture} {part.name} of {templates.a_or_an(obj.category)} {obj.category}"
