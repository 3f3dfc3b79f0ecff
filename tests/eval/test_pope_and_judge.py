import pytest

from osprey.eval.tasks.judged import RULES, parse_score, relative_score, review_prompt
from osprey.eval.tasks.pope import parse_yes_no, pope_metrics


def test_pope_parsing_is_the_official_rule():
    assert parse_yes_no("Yes, there is a dog.") == "yes"
    assert parse_yes_no("No, there is not.") == "no"
    assert parse_yes_no("There is not a dog") == "no"
    assert parse_yes_no("Yes. But no cat") == "yes"  # only the first sentence counts


def test_pope_counts():
    m = pope_metrics(["yes", "yes", "no", "no", "yes"], ["yes", "no", "no", "yes", "yes"])
    assert (m["TP"], m["FP"], m["TN"], m["FN"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(60.0)
    assert m["precision"] == pytest.approx(200 / 3)
    assert m["recall"] == pytest.approx(200 / 3)
    assert m["F1"] == pytest.approx(200 / 3)
    assert m["yes_ratio"] == pytest.approx(60.0)


def test_judge_score_parsing_and_formula():
    assert parse_score("8 6\nexplanation") == (8.0, 6.0)
    assert parse_score("8,6\n") == (8.0, 6.0)
    assert parse_score("8, 6") is None  # official quirk: ',' -> ' ' leaves two spaces, three parts
    assert parse_score("Assistant 1: 8") is None
    assert relative_score([(8, 6), (10, 9)]) == pytest.approx(15 / 18 * 100)
    text = review_prompt("ctx", "q?", "ref", "ans", RULES["description"])
    assert text.startswith("[Context]\nctx\n\n[Question]\nq?\n\n[Assistant 1]\nref\n\n[End of Assistant 1]")
    assert "rate the helpfulness, relevance, accuracy, level of details of their responses" in text
    assert "spatial correspondence" in RULES["refer_desc"]
