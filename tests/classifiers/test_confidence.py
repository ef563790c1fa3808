from __future__ import annotations

import math

import pytest

from classifiers.confidence import TokenLogprob, answer_offset, confidence_of, token_at
from policies.checks import CONFIDENCE_ABSTAINS, Answer, build_check


def toks(*items):
    return [TokenLogprob(t, lp, top) for t, lp, top in items]


def test_no_logprobs_no_confidence():
    assert confidence_of(None, "42") is None
    assert confidence_of([], "42") is None
    assert confidence_of(toks(("4", -math.inf, ())), "4") is None


def test_mean_min_and_the_margin_at_the_final_answer():
    tokens = toks(("The", -0.1, (-0.1, -3.0)), (" answer", -0.2, (-0.2, -2.0)), (" is", -0.3, (-0.3, -4.0)),
                  (" (", -0.1, (-0.1, -5.0)), ("B", -0.9, (-0.9, -1.4, -6.0)), (").", -0.0, (0.0, -9.0)))
    prompt = "Which is right?\nA) one\nB) two\nC) three\nD) four"
    conf = confidence_of(tokens, "The answer is (B).", prompt)
    assert conf.mean_logprob == pytest.approx(-1.6 / 6) and conf.min_logprob == pytest.approx(-0.9)
    assert conf.answer_margin == pytest.approx(0.5) and conf.n_tokens == 6


def test_number_answers_find_their_last_occurrence():
    text = "2 and 40 make 42. So 42"
    assert answer_offset(text, "What is 2 + 40? Give the number.") == text.rfind("42")
    tokens = toks(("2", -1, ()), (" and", -1, ()), (" 40", -1, ()))
    assert token_at(tokens, 6).token == " 40" and token_at(tokens, 99) is None


def test_no_margin_without_alternatives_or_final_answer():
    assert confidence_of(toks(("42", -0.5, (-0.5,))), "42", "What is 6*7? Give the number.").answer_margin is None
    assert confidence_of(toks(("", -0.5, (-0.5, -2))), "", "What is 6*7?").answer_margin is None


@pytest.mark.parametrize("params, conf, passed", [
    ({"min_mean_logprob": -1.0}, (-0.5, -3.0, None), True),
    ({"min_mean_logprob": -1.0}, (-1.5, -3.0, 2.0), False),
    ({"min_logprob": -2.0}, (-0.5, -3.0, 2.0), False),
    ({"min_margin": 1.0}, (-0.5, -3.0, 0.5), False),
    ({"min_margin": 1.0}, (-0.5, -3.0, None), True),          # no final answer found: that limit abstains
])
def test_confidence_check(params, conf, passed):
    from classifiers.confidence import Confidence
    check = build_check("confidence", params)
    out = check(Answer("p", "a", confidence=Confidence(*conf, n_tokens=3)))
    assert out.passed is passed and (out.reason == "") is passed


def test_confidence_check_abstains_without_logprobs():
    out = build_check("confidence", {"min_mean_logprob": -1.0})(Answer("p", "a"))
    assert out.passed and out.reason == CONFIDENCE_ABSTAINS


def test_confidence_check_needs_a_limit():
    from policies.checks import validate_check_params
    with pytest.raises(ValueError, match="needs at least one"):
        validate_check_params("confidence", {})
    with pytest.raises(ValueError, match="min_margin must be"):
        validate_check_params("confidence", {"min_margin": "high"})
