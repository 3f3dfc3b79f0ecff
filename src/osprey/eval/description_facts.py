"""Judge-free scoring of detailed region descriptions of the synthetic world.

A description is split into sentences; each sentence the grammar below accepts becomes facts about
the described object (its category, colour, size, texture, parts, position, relations to named
neighbours, occluders), every other sentence is kept as *unparsed* and states nothing. Each fact is
then judged against the scene's ground truth by the answer rules of :mod:`osprey.synthetic.facts`
(never by comparing strings with the reference paragraph):

- ``True``: the fact holds; ``False``: a hallucination (a wrong colour, a part the category does
  not have, a relation that does not hold, a neighbour that is not in the image); ``None``: the
  pixels do not settle it (a centroid on a grid line, two centroids too close for left/right).
- *recall*: the share of the reference facts (what the world's own paragraph states, built from
  the scene, see :func:`reference_facts`) that the answer states correctly;
- *precision*: correct facts / judged (True or False) stated facts.

The grammar is the world's description grammar (``questions.describe_object``) with its sentences
in any order, ``It is`` optional before the first one. A texture is stated by an adjective
("striped") or by the world's phrases ("with dark diagonal stripes", "covered in dark dots"); a
main sentence without either states "solid" (the world's convention).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from osprey.synthetic import facts
from osprey.synthetic.vocabulary import CATEGORIES, CATEGORY_NAMES, COLOUR_NAMES, SIZE_NAMES, TEXTURES
from osprey.synthetic.world import Scene, SceneObject

__all__ = ["ATTRIBUTES", "DescriptionScore", "Fact", "ParsedDescription", "judge_fact", "parse_description",
           "reference_facts", "score_description"]

ATTRIBUTES = ("category", "colour", "size", "texture", "position")  # one fact each per description
RELATIONS = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below"}
_PART_NAMES = sorted({p for c in CATEGORIES.values() for p in c.part_names}, key=len, reverse=True)
_TEXTURE_PHRASES = {"with dark diagonal stripes": "striped", "covered in dark dots": "dotted"}
_ANOTHER = "another object"
MAX_RELATIONS = 2  # the reference states at most this many relations (questions.describe_object)


def _alt(words: Iterable[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_MAIN = re.compile(
    rf"(?:it is |this is )?(?:a|an) (?:(?P<size>{_alt(SIZE_NAMES)}) )?(?:(?P<colour>{_alt(COLOUR_NAMES)}) )?"
    rf"(?:(?P<texture>{_alt(TEXTURES)}) )?(?P<category>{_alt(CATEGORY_NAMES)})"
    rf"(?: (?P<phrase>{_alt(_TEXTURE_PHRASES)}))?")
_PARTS = re.compile(r"it has (?P<parts>.+?)(?:; its (?P<hidden>.+) (?:is|are) mostly hidden)?")
_PART_ITEM = re.compile(rf"(?:two|a|an) (?:(?P<colour>{_alt(COLOUR_NAMES)}) )?(?P<part>{_alt(_PART_NAMES)})")
_POSITION = re.compile(
    r"it is (?:(?P<center>in the center)|on the (?P<side>left|right) side|at the (?P<edge>top|bottom)"
    r"|in the (?P<row>top|middle|bottom) (?P<column>left|center|right) part) of the image")
_NOUN = re.compile(rf"the (?:(?P<size>{_alt(SIZE_NAMES)}) )?(?P<colour>{_alt(COLOUR_NAMES)}) "
                   rf"(?P<category>{_alt(CATEGORY_NAMES)})")
_RELATION_ITEM = re.compile(rf"(?P<rel>{_alt(RELATIONS)}) (?P<noun>.+)")
_HIDDEN_BEHIND = re.compile(r"it is partly hidden behind (?P<names>.+)")
_COVERS = re.compile(r"it partly covers (?P<names>.+)")


@dataclass(frozen=True)
class Fact:
    """One statement about the described object. ``value`` by kind: category/colour/size/texture: the
    word; position: "row column" ("top left", "middle center"); part / hidden_part: the part name;
    part_colour: "part=colour"; relation: "left|right|above|below:NOUN"; occluder / covers: NOUN,
    where NOUN is a phrase such as "the small red lamp" or "another object"."""

    kind: str
    value: str


@dataclass(frozen=True)
class ParsedDescription:
    facts: tuple[Fact, ...]
    unparsed: tuple[str, ...]  # sentences the grammar does not accept (they state no fact)


def _split_list(text: str) -> list[str]:
    """ "a, b and c" -> ["a", "b", "c"] (the world's lists; no item contains " and ")."""
    return [item.strip() for chunk in text.split(", ") for item in chunk.split(" and ")]


def _sentence_facts(sentence: str) -> list[Fact] | None:
    """The facts of one sentence (lower-case, no final stop), or None when the grammar refuses it."""
    if m := _MAIN.fullmatch(sentence):
        out = [Fact("category", m["category"])]
        out += [Fact(k, m[k]) for k in ("size", "colour") if m[k]]
        if m["texture"] and m["phrase"] and m["texture"] != _TEXTURE_PHRASES[m["phrase"]]:
            return None  # "a striped lamp covered in dark dots": contradicts itself
        out.append(Fact("texture", m["texture"] or _TEXTURE_PHRASES.get(m["phrase"] or "", "solid")))
        return out
    if m := _PARTS.fullmatch(sentence):
        items = [_PART_ITEM.fullmatch(item) for item in _split_list(m["parts"])]
        hidden = _split_list(m["hidden"]) if m["hidden"] else []
        if not all(items) or any(h not in _PART_NAMES for h in hidden):
            return None
        out = [Fact("part", i["part"]) for i in items]
        out += [Fact("part_colour", f"{i['part']}={i['colour']}") for i in items if i["colour"]]
        return out + [Fact("hidden_part", h) for h in hidden]
    if m := _POSITION.fullmatch(sentence):
        if m["center"]:
            cell = "middle center"
        elif m["side"]:
            cell = f"middle {m['side']}"
        elif m["edge"]:
            cell = f"{m['edge']} center"
        else:
            cell = f"{m['row']} {m['column']}"
        return [Fact("position", cell)]
    for pattern, kind in ((_HIDDEN_BEHIND, "occluder"), (_COVERS, "covers")):
        if m := pattern.fullmatch(sentence):
            names = _split_list(m["names"])
            if not all(n == _ANOTHER or _NOUN.fullmatch(n) for n in names):
                return None
            return [Fact(kind, n) for n in names]
    if sentence.startswith("it is "):
        items = [_RELATION_ITEM.fullmatch(item) for item in sentence[len("it is "):].split(" and ")]
        if items and all(i and _NOUN.fullmatch(i["noun"]) for i in items):
            return [Fact("relation", f"{RELATIONS[i['rel']]}:{i['noun']}") for i in items]
    return None


def parse_description(text: str) -> ParsedDescription:
    """Facts of every accepted sentence of ``text``, in order, and the sentences refused."""
    found: list[Fact] = []
    unparsed: list[str] = []
    for raw in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
        sentence = raw.strip().rstrip(".!?").strip()
        if not sentence:
            continue
        parsed = _sentence_facts(sentence.lower())
        if parsed is None:
            unparsed.append(raw.strip())
        else:
            found += parsed
    return ParsedDescription(tuple(found), tuple(unparsed))


# ------------------------------------------------------------------------------------------ judging


def _resolve(scene: Scene, obj: SceneObject, noun: str) -> list[SceneObject]:
    """The other objects a noun phrase ("the small red lamp") fits."""
    m = _NOUN.fullmatch(noun)
    if m is None:
        return []
    return [o for o in scene.objects if o.id != obj.id and o.colour == m["colour"] and o.category == m["category"]
            and (m["size"] is None or o.size == m["size"])]


def _settled(value: str, truth: str, readable: str | None) -> bool | None:
    """True if ``value`` is the truth; False if the pixels settle it otherwise; None if they do not."""
    if value == truth:
        return True
    return False if readable is not None else None


def _position(scene: Scene, obj: SceneObject, cell: str) -> bool | None:
    if cell == " ".join(facts.position_words(scene, obj)):
        return True
    if facts.position_answer(scene, obj) is not None:
        return False
    # A centroid within the margin of a grid line: the neighbouring cell across that line is no error.
    m = facts.POSITION_MARGIN
    cx, cy = obj.centroid[0] / scene.width, obj.centroid[1] / scene.height
    rows = {("top", "middle", "bottom")[min(2, int(3 * max(0.0, min(0.999, v))))] for v in (cy - m, cy, cy + m)}
    cols = {("left", "center", "right")[min(2, int(3 * max(0.0, min(0.999, v))))] for v in (cx - m, cx, cx + m)}
    row, column = cell.split()
    return None if row in rows and column in cols else False


def _occlusion(scene: Scene, obj: SceneObject, noun: str, targets: list[SceneObject]) -> bool:
    if noun == _ANOTHER:  # the world says "another object" for a neighbour it cannot name uniquely
        return any(facts.noun_phrase(scene, t) is None for t in targets)
    named = _resolve(scene, obj, noun)
    return len(named) == 1 and named[0] in targets


def judge_fact(scene: Scene, obj: SceneObject, fact: Fact) -> bool | None:
    """Whether ``fact`` holds for ``obj`` in ``scene``: True, False (a hallucination), or None (the
    pixels do not settle it)."""
    kind, value = fact.kind, fact.value
    if kind == "category":
        return value == obj.category
    if kind == "colour":
        return _settled(value, obj.colour, facts.colour_answer(obj))
    if kind == "size":
        return _settled(value, obj.size, facts.size_answer(scene, obj))
    if kind == "texture":
        return _settled(value, obj.texture, facts.texture_answer(scene, obj))
    if kind == "position":
        return _position(scene, obj, value)
    if kind == "part":
        return value in CATEGORIES[obj.category].part_names
    if kind == "part_colour":
        name, colour = value.split("=")
        return name in CATEGORIES[obj.category].part_names and obj.part(name).colour == colour
    if kind == "hidden_part":
        return value in CATEGORIES[obj.category].part_names and obj.part(value).visibility < facts.MIN_PART_VISIBILITY
    if kind == "relation":
        relation, noun = value.split(":", 1)
        named = _resolve(scene, obj, noun)
        if len(named) != 1:
            return False  # a neighbour that is not there, or a name that fits several objects
        rule = facts.horizontal_relation if relation in ("left", "right") else facts.vertical_relation
        actual = rule(scene, obj, named[0])
        return None if actual is None else actual == relation
    if kind == "occluder":
        return _occlusion(scene, obj, value, [scene.object(i) for i in obj.occluded_by])
    if kind == "covers":
        return _occlusion(scene, obj, value, [o for o in scene.objects if obj.id in o.occluded_by])
    raise ValueError(f"unknown fact kind {kind!r}; expected one of the kinds of Fact")


def _name(scene: Scene, other: SceneObject) -> str:
    return facts.noun_phrase(scene, other) or _ANOTHER


def reference_facts(scene: Scene, obj: SceneObject) -> tuple[list[Fact], int]:
    """(facts, relation slots): what the world's reference paragraph of ``obj`` states, built from
    the scene. Relations are slots, not facts: the reference names up to two neighbours picked at
    random, so any true relation to a uniquely named neighbour fills a slot."""
    out = [Fact("category", obj.category), Fact("colour", obj.colour), Fact("size", obj.size),
           Fact("texture", obj.texture), Fact("position", " ".join(facts.position_words(scene, obj)))]
    for part in obj.parts:
        if part.visibility < facts.MIN_PART_VISIBILITY:
            out.append(Fact("hidden_part", part.name))
            continue
        out.append(Fact("part", part.name))
        if part.colour != obj.colour:
            out.append(Fact("part_colour", f"{part.name}={part.colour}"))
    out += [Fact("occluder", n) for n in dict.fromkeys(_name(scene, scene.object(i)) for i in obj.occluded_by)]
    out += [Fact("covers", n) for n in dict.fromkeys(_name(scene, o) for o in scene.objects if obj.id in o.occluded_by)]
    nameable = [o for o in scene.objects if o.id != obj.id and facts.noun_phrase(scene, o) is not None and
                (facts.horizontal_relation(scene, obj, o) or facts.vertical_relation(scene, obj, o))]
    return out, min(MAX_RELATIONS, len(nameable))


@dataclass
class DescriptionScore:
    """One description judged: counts for micro-averaged recall and precision, and per attribute
    whether the answer states it correctly (stated, and every statement of it true)."""

    reference: int  # reference facts + relation slots
    recalled: int
    stated: int  # judged stated facts (True or False)
    correct: int
    unsettled: int  # stated facts the pixels do not settle (left out of precision)
    unparsed: int  # sentences the grammar refused
    attributes: dict[str, bool] = field(default_factory=dict)
    parts: tuple[int, int] = (0, 0)  # (visible parts named, visible parts)
    verdicts: list[tuple[Fact, bool | None]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.recalled / self.reference if self.reference else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.stated if self.stated else float("nan")


def score_description(scene: Scene, obj: SceneObject, text: str) -> DescriptionScore:
    """Parse ``text`` (a description of ``obj``) and judge every fact against the scene."""
    parsed = parse_description(text)
    verdicts = [(f, judge_fact(scene, obj, f)) for f in dict.fromkeys(parsed.facts)]
    true = {f for f, v in verdicts if v is True}
    wanted, slots = reference_facts(scene, obj)
    relations = len({f.value for f in true if f.kind == "relation"})
    # A reference fact is recalled when the answer states it truly; occluders / covered neighbours
    # match by the object named, so "the red lamp" and "the small red lamp" of one lamp agree.
    recalled = sum(f in true or (f.kind in ("occluder", "covers") and _same_target(scene, obj, f, true))
                   for f in wanted)
    attributes = {}
    for kind in ATTRIBUTES:
        stated = [v for f, v in verdicts if f.kind == kind]
        attributes[kind] = bool(stated) and all(v is True for v in stated)
    visible = [f for f in wanted if f.kind == "part"]
    return DescriptionScore(
        reference=len(wanted) + slots,
        recalled=recalled + min(slots, relations),
        stated=sum(v is not None for _, v in verdicts),
        correct=sum(v is True for _, v in verdicts),
        unsettled=sum(v is None for _, v in verdicts),
        unparsed=len(parsed.unparsed),
        attributes=attributes,
        parts=(sum(f in true for f in visible), len(visible)),
        verdicts=verdicts,
    )


def _same_target(scene: Scene, obj: SceneObject, wanted: Fact, true: set[Fact]) -> bool:
    if wanted.value == _ANOTHER:
        return False
    targets = _resolve(scene, obj, wanted.value)
    return any(f.kind == wanted.kind and f.value != _ANOTHER and _resolve(scene, obj, f.value) == targets
               for f in true)
