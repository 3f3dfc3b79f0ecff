"""The judge-free description scorer: the world's own paragraphs score 1/1, errors are caught."""

from __future__ import annotations

import math
import random

import pytest

from osprey.eval.description_facts import Fact, judge_fact, parse_description, score_description
from osprey.synthetic import facts
from osprey.synthetic.questions import detail_description_record
from osprey.synthetic.seeds import test_seeds as held_out_seeds
from osprey.synthetic.seeds import train_seeds
from osprey.synthetic.vocabulary import CATEGORIES, COLOUR_NAMES
from osprey.synthetic.world import generate_scene


def _described(seeds):
    for seed in seeds:
        scene = generate_scene(seed)
        record = detail_description_record(scene)
        for ref, text in zip(record.regions, record.descriptions, strict=True):
            yield scene, scene.object(ref.object_id), text


def _sentences(text: str) -> list[str]:
    return [s if s.endswith(".") else s + "." for s in text.split(". ")]


@pytest.mark.parametrize("seeds", [train_seeds(120), held_out_seeds(120, 7)], ids=["train", "test"])
def test_reference_paragraphs_score_one_on_their_own_scene(seeds):
    count = 0
    for scene, obj, text in _described(seeds):
        score = score_description(scene, obj, text)
        bad = [(f, v) for f, v in score.verdicts if v is not True]
        assert (score.recall, score.precision, score.unparsed, bad) == (1.0, 1.0, 0, []), (scene.seed, text)
        assert all(score.attributes.values()) and score.parts[0] == score.parts[1] > 0
        count += 1
    assert count > 400  # 3-6 objects per scene


def test_reordered_sentences_score_the_same():
    rng = random.Random(3)
    for scene, obj, text in _described(held_out_seeds(30)):
        sentences = _sentences(text)
        rng.shuffle(sentences)
        score = score_description(scene, obj, " ".join(sentences))
        assert (score.recall, score.precision) == (1.0, 1.0), " ".join(sentences)


def test_wrong_colour_is_a_hallucination_and_lowers_recall():
    scene, obj, text = next(x for x in _described(held_out_seeds(20)) if facts.colour_answer(x[1]))
    wrong = next(c for c in COLOUR_NAMES if c != obj.colour)
    first, *rest = _sentences(text)
    answer = " ".join([first.replace(f" {obj.colour} ", f" {wrong} ", 1), *rest])
    score = score_description(scene, obj, answer)
    assert (Fact("colour", wrong), False) in score.verdicts
    assert score.attributes["colour"] is False and score.attributes["category"] is True
    assert score.precision < 1.0 and score.recall < 1.0


def test_a_part_the_category_does_not_have_is_a_hallucination():
    scene, obj, _ = next(x for x in _described(held_out_seeds(5)) if x[1].category != "house")
    assert "chimney" not in CATEGORIES[obj.category].part_names
    score = score_description(scene, obj, f"A {obj.colour} {obj.category}. It has a chimney.")
    assert (Fact("part", "chimney"), False) in score.verdicts
    assert score.precision < 1.0


def test_invented_and_misplaced_neighbours_are_hallucinations():
    for scene, obj, _ in _described(held_out_seeds(40)):
        absent = [(c, k) for c in COLOUR_NAMES for k in CATEGORIES
                  if not any(o.colour == c and o.category == k for o in scene.objects)]
        named = [o for o in scene.objects if o.id != obj.id and facts.noun_phrase(scene, o)
                 and facts.horizontal_relation(scene, obj, o)]
        if not named:
            continue
        other = named[0]
        truth = facts.horizontal_relation(scene, obj, other)
        false = "right" if truth == "left" else "left"
        colour, category = absent[0]
        answer = (f"It is to the {false} of {facts.noun_phrase(scene, other)}. "
                  f"It is above the {colour} {category}. It is to the {truth} of {facts.noun_phrase(scene, other)}.")
        score = score_description(scene, obj, answer)
        assert [v for _, v in score.verdicts] == [False, False, True], answer
        assert score.precision == pytest.approx(1 / 3)
        return
    pytest.fail("no scene with a named horizontal neighbour")


def test_a_name_that_fits_two_objects_is_not_a_neighbour():
    for scene, obj, _ in _described(held_out_seeds(60)):
        for other in scene.objects:
            twins = [o for o in scene.objects if o.id != obj.id and o.colour == other.colour
                     and o.category == other.category]
            if other.id != obj.id and len(twins) > 1:
                fact = Fact("relation", f"above:the {other.colour} {other.category}")
                assert judge_fact(scene, obj, fact) is False
                return
    pytest.fail("no scene with two look-alike neighbours")


@pytest.mark.parametrize("sentence", [
    "It is not a red lamp.",
    "It has no wheels.",
    "A pink lamp.",  # not a colour of the world
    "It is either above or below the red lamp.",
    "A red lamp or a blue tree.",
    "It is red.",
    "It has a shade and probably a pole.",
    "A striped red lamp covered in dark dots.",  # contradicts itself
    "It is to the left of something.",
    "The image shows many things.",
])
def test_sentences_it_must_not_accept(sentence):
    parsed = parse_description(sentence)
    assert parsed.facts == () and parsed.unparsed == (sentence,)


def test_accepted_forms_and_their_facts():
    parsed = parse_description("It is a large blue striped car.  It has two orange wheels, a cabin and a body; "
                               "its cabin is mostly hidden. It is at the top of the image. It partly covers "
                               "the red lamp and another object. gibberish here")
    assert parsed.facts == (
        Fact("category", "car"), Fact("size", "large"), Fact("colour", "blue"), Fact("texture", "striped"),
        Fact("part", "wheels"), Fact("part", "cabin"), Fact("part", "body"), Fact("part_colour", "wheels=orange"),
        Fact("hidden_part", "cabin"), Fact("position", "top center"),
        Fact("covers", "the red lamp"), Fact("covers", "another object"))
    assert parsed.unparsed == ("gibberish here",)


def test_an_empty_or_unparsable_answer_states_nothing():
    scene, obj, _ = next(_described(held_out_seeds(1)))
    for text in ("", "car", "The the the"):
        score = score_description(scene, obj, text)
        assert score.stated == 0 and score.recalled == 0 and math.isnan(score.precision)
        assert not any(score.attributes.values())
