import pytest

from osprey.eval.text_metrics import (
    clean_category_answer,
    clean_category_label,
    exact_match,
    normalize_answer,
    semantic_iou,
    sentence_encoder,
)


def test_clean_category_answer_follows_the_official_script():
    assert clean_category_answer(" Answer: red car.</s>") == " red car "
    assert clean_category_answer("a: b: c") == " b"  # split(':')[1]: between the first two colons
    assert clean_category_answer("dog, cat.") == "dog  cat "
    assert clean_category_label("dog:ear") == "dog ear"
    assert clean_category_label("baseball_bat") == "baseball bat"


def test_semantic_iou_hand_values():
    assert semantic_iou("red car", "car") == pytest.approx(1 / 2)
    assert semantic_iou("Red Car", "red car") == 1.0
    assert semantic_iou("a big dog", "dog ear") == pytest.approx(1 / 4)
    assert semantic_iou("cat", "dog") == 0.0
    assert semantic_iou("", "") == 0.0


def test_normalize_and_exact_match():
    assert normalize_answer("The Red, car!") == "red car"
    assert exact_match("An apple.", "apple")
    assert not exact_match("apples", "apple")


def test_semantic_similarity_uses_the_real_minilm():
    enc = sentence_encoder()
    sims = enc.pairwise_cosine(["dog", "a red car", "dog"], ["dog", "car", "spaceship engine"])
    assert sims[0] == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < sims[1] < 0.9  # related
    assert sims[2] < sims[1]
    assert enc.encode(["x"]).shape == (1, 384)
