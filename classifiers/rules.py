"""Rule checks on an answer: empty, refusal, multiple-choice answer with no extractable final choice,
numeric or output-prediction answer that states no final answer.

The choice extraction follows MMLU-Pro's evaluation script (``answer is (X)``, then ``Answer: X``),
so "no extractable choice" here means the same as a 0 score there for want of an answer. "No final
number" / "no output" use :mod:`classifiers.extract` (:func:`classifiers.extract.final_answer_failure`):
an answer to a numeric question that ends without stating a number (cut off mid-computation, or
reasoning that never concludes) is right far less often (Mixtral-8x7B on GSM8K: 40% against 67%).
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from classifiers.base import check_pairs

# A prompt is multiple choice when it lists >= 2 options such as "A. ...", "(B) ...", "C) ...".
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[.)]\s", re.MULTILINE)
# "answer" in any case; the letter upper-case only (as MMLU-Pro's extraction), so "the answer
# is a bit unclear" extracts nothing
_ANSWER_IS = re.compile(r"(?i:answer is):?[\s*(]*([A-J])\b")
_ANSWER_COLON = re.compile(r"(?i:answer)\s*:[\s*(]*([A-J])\b")
_BARE_LETTER = re.compile(r"^\s*\(?([A-J])\)?[.):]?\s*$")
_REFUSAL = re.compile(r"\b(?:I(?:'m| am) sorry,? but I (?:can(?:no|')t|am unable)|I can(?:no|')t "
                      r"(?:help|assist|answer|provide)|I(?:'m| am) (?:not able|unable) to "
                      r"(?:help|assist|answer|provide)|as an AI(?: language model)?,? I (?:can(?:no|')t|"
                      r"do not|don't))", re.IGNORECASE)
_TAIL_CHARS = 4000   # the final choice is searched for in the answer's last characters


def is_multiple_choice(prompt: str) -> bool:
    """True when the prompt lists at least two lettered options."""
    return len(set(_OPTION_LINE.findall(prompt[-6000:]))) >= 2


def extract_choice(answer: str) -> str | None:
    """The final option letter of an answer, or ``None`` when none can be extracted."""
    tail = answer[-_TAIL_CHARS:]
    for pattern in (_ANSWER_IS, _ANSWER_COLON):
        found = pattern.findall(tail)
        if found:
            return found[-1]
    bare = _BARE_LETTER.match(tail)
    return bare.group(1) if bare else None


def answer_letters(answer: str) -> set[str]:
    """Every option letter the answer states as its answer ("answer is (X)", "Answer: X")."""
    tail = answer[-_TAIL_CHARS:]
    return {m for pattern in (_ANSWER_IS, _ANSWER_COLON) for m in pattern.findall(tail)}


def is_refusal(answer: str) -> bool:
    """True when the answer opens (first 400 characters) with a refusal."""
    return _REFUSAL.search(answer[:400]) is not None


def final_answer_failure(prompt: str, answer: str) -> str | None:
    """``no_number`` / ``no_output``: :func:`classifiers.extract.final_answer_failure`."""
    from classifiers.extract import final_answer_failure as failure   # classifiers.extract imports this module
    return failure(prompt, answer)


def rule_failure(prompt: str, answer: str) -> str | None:
    """Name of the first rule the answer fails (``empty``, ``refusal``, ``no_choice``, ``no_number``,
    ``no_output``), or ``None``."""
    if not answer.strip():
        return "empty"
    if is_refusal(answer):
        return "refusal"
    if is_multiple_choice(prompt):
        return "no_choice" if extract_choice(answer) is None else None
    return final_answer_failure(prompt, answer)


def final_answer_failed(prompts: Sequence[str], answers: Sequence[str], choice: np.ndarray) -> np.ndarray:
    """Per pair, whether :func:`final_answer_failure` names a rule (rows where ``choice`` is set, the
    multiple-choice prompts, are skipped: no_choice covers them). The trained checkers score these 1.0."""
    pairs = zip(prompts, answers, choice)
    return np.fromiter((not mc and final_answer_failure(p, a) is not None for p, a, mc in pairs),
                       dtype=bool, count=len(prompts))


class RuleAnswerChecker:
    """Answer checker made of rules only: 1.0 when a rule fails, else 0.0."""

    name = "rules"

    def score_one(self, prompt: str, answer: str) -> float:
        return 0.0 if rule_failure(prompt, answer) is None else 1.0

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        check_pairs(prompts, answers)
        return np.fromiter((self.score_one(p, a) for p, a in zip(prompts, answers)),
                           dtype=np.float64, count=len(prompts))
