"""The by-kind classifier: the default score, shifted up (in logit) on the prompt kinds the answer checker
cannot judge, unchanged on multiple-choice prompts."""
from __future__ import annotations

import math

import numpy as np
import pytest

import classifiers
from classifiers.by_kind import SHIFTS, KindShiftedClassifier, shifted
from classifiers.extract import prompt_kind

PROMPTS = {
    "choice": "Which planet is largest?\nOptions:\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer with the letter.",
    "number": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
              "How many clips did Natalia sell altogether in April and May?",
    "code": "Write a Python function that returns the n-th Fibonacci number.",
    "text": "Compose an engaging travel blog post about a recent trip to Hawaii.",
}


@pytest.mark.parametrize("kind", sorted(PROMPTS))
def test_shift_per_kind(kind):
    prompt = PROMPTS[kind]
    assert prompt_kind(prompt) == kind
    base = classifiers.load_classifier("default").score_one(prompt)
    got = classifiers.load_classifier("by-kind").score_one(prompt)
    if SHIFTS[kind] == 0:
        assert got == base
    else:
        assert got > base
        assert math.log(got / (1 - got)) - math.log(base / (1 - base)) == pytest.approx(SHIFTS[kind], abs=1e-9)


def test_batch_equals_one_by_one_and_choice_is_untouched():
    clf = classifiers.load_classifier("by-kind")
    texts = list(PROMPTS.values()) * 3
    batch = clf.score(texts)
    assert np.allclose(batch, [clf.score_one(t) for t in texts], atol=1e-12)
    default = classifiers.load_classifier("default").score(texts)
    kinds = np.array([prompt_kind(t) for t in texts])
    assert np.array_equal(batch[kinds == "choice"], default[kinds == "choice"])
    assert (batch[kinds != "choice"] > default[kinds != "choice"]).all()


def test_shifted_keeps_the_range_and_the_order():
    s = np.array([0.0, 1e-15, 0.2, 0.5, 0.9, 1.0])
    out = shifted(s, np.full(s.size, 0.25))
    assert ((out >= 0) & (out <= 1)).all() and (np.diff(out) >= 0).all()
    assert np.array_equal(shifted(s, np.zeros(s.size)), s)
    wrapped = KindShiftedClassifier(classifiers.load_classifier("heuristic"), {"text": -1.0})
    text = PROMPTS["text"]
    assert wrapped.score_one(text) < classifiers.load_classifier("heuristic").score_one(text)
