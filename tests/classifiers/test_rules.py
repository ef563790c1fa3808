"""Rule checks and the heuristic classifier (table-driven)."""
from __future__ import annotations

import pytest

from classifiers.heuristic import HeuristicClassifier
from classifiers.rules import (RuleAnswerChecker, answer_letters, extract_choice, is_multiple_choice,
                               is_refusal, rule_failure)

MC = "Which is a prime?\nOptions:\nA. 4\nB. 6\nC. 7\nD. 9"


@pytest.mark.parametrize("answer, choice", [
    ("Let's think step by step. 7 is prime. The answer is (C).", "C"),
    ("the answer is C", "C"),
    ("The answer is: **(B)**", "B"),
    ("Answer: D", "D"),
    ("answer: (A)", "A"),
    ("The answer is a bit unclear.", None),
    ("C", "C"),
    ("(B)", "B"),
    ("The answer is (A). Wait, no. The answer is (C).", "C"),
    ("7 is prime, so option three.", None),
    ("", None),
    ("The answer is not in the options.", None),
])
def test_extract_choice(answer, choice):
    assert extract_choice(answer) == choice


def test_answer_letters():
    assert answer_letters("The answer is (A). Hmm, the answer is (C).") == {"A", "C"}
    assert answer_letters("no letter") == set()


@pytest.mark.parametrize("prompt, expected", [
    (MC, True),
    ("(A) yes\n(B) no", True),
    ("A) only one", False),
    ("What is 2 + 2?", False),
])
def test_is_multiple_choice(prompt, expected):
    assert is_multiple_choice(prompt) is expected


@pytest.mark.parametrize("answer, expected", [
    ("I'm sorry, but I can't help with that.", True),
    ("I cannot assist with this request.", True),
    ("As an AI language model, I cannot browse.", True),
    ("Sorry for the delay: the answer is (B).", False),
    ("The answer is (C).", False),
])
def test_is_refusal(answer, expected):
    assert is_refusal(answer) is expected


@pytest.mark.parametrize("prompt, answer, failure", [
    (MC, "", "empty"),
    (MC, "   \n", "empty"),
    (MC, "I'm sorry, but I cannot answer that.", "refusal"),
    (MC, "Seven is prime.", "no_choice"),
    (MC, "The answer is (C).", None),
    ("Write a haiku about rain.", "Rain on the tin roof", None),
])
def test_rule_failure(prompt, answer, failure):
    assert rule_failure(prompt, answer) == failure
    assert RuleAnswerChecker().score_one(prompt, answer) == (0.0 if failure is None else 1.0)


def test_heuristic_orders_obvious_cases():
    h = HeuristicClassifier()
    easy = h.score_one("hi")
    hard = h.score_one("Prove step by step that the algorithm's complexity is O(n log n); derive "
                       "the recurrence, analyze the worst case and justify every bound: $T(n)=2T(n/2)+n$.")
    assert 0.0 < easy < hard < 1.0
