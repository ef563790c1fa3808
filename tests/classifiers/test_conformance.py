"""Every classifier and answer checker honours its protocol (shapes, range, determinism...)."""
from __future__ import annotations

import numpy as np
import pytest

import classifiers
from classifiers.base import AnswerChecker, Classifier

PROMPTS = [
    "",
    "hi",
    "Prove that the square root of 2 is irrational, step by step.",
    "Which of these is a mammal?\nOptions:\nA. shark\nB. whale\nC. trout\nD. eel",
    "Ünïcödé ✓ 数学の問題: 2+2=? \U0001f600",
    "x" * 200_000,
    "def f(x):\n    return x ** 2\n# what does f(3) return?",
    "\x00\ud800 lone surrogate and NUL",
]
ANSWERS = ["", "The answer is (B).", "I'm sorry, but I can't help with that.", "maybe 4",
           "A", "y" * 100_000, "Answer: C", "\ud800"]

CLASSIFIERS = ["heuristic", "default", "mmlu-pro", "by-kind"]
CHECKERS = ["rules", "default"]


@pytest.fixture(params=CLASSIFIERS)
def classifier(request):
    return classifiers.load_classifier(request.param)


@pytest.fixture(params=CHECKERS)
def checker(request):
    return classifiers.load_answer_checker(request.param)


def test_classifier_protocol(classifier):
    assert isinstance(classifier, Classifier)
    scores = classifier.score(PROMPTS)
    assert scores.dtype == np.float64 and scores.shape == (len(PROMPTS),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert np.array_equal(scores, classifier.score(PROMPTS))  # deterministic
    for text, s in zip(PROMPTS, scores):
        assert classifier.score_one(text) == pytest.approx(s, abs=1e-12)
        assert classifier.score([text])[0] == pytest.approx(s, abs=1e-12)
    assert classifier.score([]).shape == (0,)
    assert isinstance(classifier.name, str) and classifier.name


def test_classifier_score_one_equals_batch_of_one(classifier):
    for text in PROMPTS:
        assert classifier.score_one(text) == classifier.score([text])[0]


def test_checker_protocol(checker):
    assert isinstance(checker, AnswerChecker)
    prompts = PROMPTS[: len(ANSWERS)]
    scores = checker.score(prompts, ANSWERS)
    assert scores.dtype == np.float64 and scores.shape == (len(ANSWERS),)
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert np.array_equal(scores, checker.score(prompts, ANSWERS))
    for p, a, s in zip(prompts, ANSWERS, scores):
        assert checker.score_one(p, a) == pytest.approx(s, abs=1e-12)
    assert checker.score([], []).shape == (0,)
    with pytest.raises(ValueError):
        checker.score(["a", "b"], ["a"])


def test_checker_rules_fire(checker):
    mc = "Pick one.\nA. red\nB. blue\nC. green"
    assert checker.score_one(mc, "") == 1.0
    assert checker.score_one(mc, "I'm sorry, but I can't help with that.") == 1.0
    assert checker.score_one(mc, "Red and blue are both nice colours.") == 1.0
    assert checker.score_one(mc, "Blue is the colour of the sky. The answer is (B).") < 1.0


def test_batch_order_does_not_matter():
    clf = classifiers.load_classifier("default")
    scores = clf.score(PROMPTS)
    assert np.allclose(clf.score(PROMPTS[::-1])[::-1], scores, rtol=0, atol=1e-12)


def test_many_prompts_across_chunks():
    clf = classifiers.load_classifier("default")
    texts = [f"question {i}: what is {i} + {i}?\nA. {i}\nB. {2 * i}" for i in range(3000)]
    texts += ["z" * 5000] * 200
    scores = clf.score(texts)
    single = np.array([clf.score_one(t) for t in texts[::97]])
    assert np.allclose(scores[::97], single, rtol=0, atol=1e-12)
