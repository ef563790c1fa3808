"""Rule checks and the heuristic classifier (table-driven)."""
from __future__ import annotations

import pytest

from classifiers.extract import checker_judges
from classifiers.heuristic import HeuristicClassifier
from classifiers.rules import (RuleAnswerChecker, answer_letters, extract_choice, is_multiple_choice,
                               is_refusal, rule_failure)

MC = "Which is a prime?\nOptions:\nA. 4\nB. 6\nC. 7\nD. 9"
GSM8K = ("Jill has 10 llamas. After they give birth, Jill traded 8 of the calves for 2 new adult llamas. Then she "
         "sells 1/3 of her herd at the market. How many total llamas (calves and adults) does Jill have now?")
CRUX = ("Complete the assertion with a literal containing the output when executing the provided code on the given "
        "input.\n[PYTHON]\ndef f(text):\n    return text.upper()\nassert f('ua6hajq') == ??\n[/PYTHON]")
# Mixtral-8x7B on GSM8K / MT-Bench, cut off or concluding without a number
CUT_OFF = ("Each of these employees is paid $4000 a month.\nSo the company pays 220 \\* $4000 = "
           "$<<220*4000=880000>>880,00")
NO_CONCLUSION = ("Since every sister has the same brother, that brother is David himself.\nThe number of sisters "
                 "David has does not affect the number of brothers he has.")


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
    # a numeric question answered with no final number; an output request answered with no output
    (GSM8K, CUT_OFF, "no_number"),
    (GSM8K, NO_CONCLUSION, "no_number"),
    (GSM8K, "Jill has 10 - 8 + 2 = 4 adults and sells a third of 6 herds.\nTherefore, Jill has 9 llamas.", None),
    (GSM8K, "#### 9", None),
    (GSM8K, "", "empty"),
    (CRUX, "1. The function upper-cases its argument.\n2. Every letter of 'ua6hajq' becomes a capital.", "no_output"),
    (CRUX, "[ANSWER]\nassert f('ua6hajq') == 'UA6HAJQ'\n[/ANSWER]", None),
    (CRUX, '"UA6HAJQ"', None),
    # open questions state no final number and need none
    ("Compose a travel blog post about a recent trip to Hawaii.", NO_CONCLUSION, None),
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


@pytest.mark.parametrize("prompt, answer, judged", [
    (GSM8K, CUT_OFF, True),                      # only its rules speak: score 1.0
    (GSM8K, "#### 9", False),                    # a stated number: the checker abstains, as before
    (CRUX, NO_CONCLUSION, True),
    (CRUX, '"UA6HAJQ"', False),
    ("Compose a travel blog post about a recent trip to Hawaii.", NO_CONCLUSION, False),
    (MC, "The answer is (C).", False),           # a short multiple-choice answer that passes its rules
    (MC, "Seven is prime.", True),
])
def test_checker_judges_a_missing_final_answer(prompt, answer, judged):
    assert checker_judges(prompt, answer) is judged


def test_the_shipped_checker_scores_a_missing_final_answer_one():
    """The shipped artifact loads, and its rules give a numeric answer with no final number 1.0, live
    (score_one) and in a batch (as replay scores), and leave the other answers to the model."""
    from classifiers import load_answer_checker

    checker = load_answer_checker("default")
    prompts = [GSM8K, GSM8K, CRUX, CRUX, MC]
    answers = [CUT_OFF, "Therefore, Jill has 9 llamas.", NO_CONCLUSION, '"UA6HAJQ"', "Let me think. The answer is (C)."]
    batch = checker.score(prompts, answers)
    assert [checker.score_one(p, a) for p, a in zip(prompts, answers)] == pytest.approx(batch.tolist())
    assert batch[0] == batch[2] == 1.0
    assert batch[1] < 1.0 and batch[3] < 1.0 and batch[4] < 1.0


def test_a_linear_checker_scores_a_missing_final_answer_one():
    import numpy as np

    from classifiers.checker import LinearAnswerChecker
    from classifiers.features import FeatureSpec
    from classifiers.linear import LinearStack
    from classifiers.tree_checker import DENSE_NAMES

    spec = FeatureSpec(bits=8, char_ngrams=(), word_ngrams=(1, 2), head=64, tail=64)
    rng = np.random.default_rng(5)
    stack = LinearStack(spec=spec, table=rng.normal(size=256), struct_coef=rng.normal(size=len(DENSE_NAMES)),
                        struct_mean=np.zeros(len(DENSE_NAMES)), struct_scale=np.ones(len(DENSE_NAMES)), bias=-3.0)
    got = LinearAnswerChecker(stack).score([GSM8K, GSM8K, CRUX], [CUT_OFF, "#### 9", NO_CONCLUSION])
    assert got[0] == got[2] == 1.0 and got[1] < 1.0
