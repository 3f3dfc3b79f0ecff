import pytest

from osprey.eval.caption_metrics import caption_scores

REFS = {"1": ["a man riding a horse"], "2": ["two dogs play in snow"]}


def test_identical_and_swapped_captions():
    same = caption_scores(REFS, {"1": "a man riding a horse", "2": "two dogs play in snow"})
    # CIDEr-D: disjoint references give every n-gram idf log(2); identical tf-idf vectors -> 10 per item.
    assert same["CIDEr"] == pytest.approx(10.0)
    assert same["METEOR"] == pytest.approx(1.0)
    swapped = caption_scores(REFS, {"1": "two dogs play in snow", "2": "a man riding a horse"}, ("CIDEr",))
    assert swapped == {"CIDEr": pytest.approx(0.0)}


def test_missing_reference_is_an_error():
    with pytest.raises(ValueError, match="without references"):
        caption_scores(REFS, {"3": "x"})
