"""The trained answer checker: (prompt, answer) -> P(answer inadequate), rules included.

A :class:`~classifiers.linear.LinearStack` over the *answer's* hashed n-grams and dense features
(the answer's structural features, the prompt's structural features, and the rule signals of
:mod:`classifiers.rules`). A failed rule (empty answer, refusal, multiple-choice answer with no
extractable final choice, numeric or output-prediction answer with no final answer) overrides the model:
the score is then 1.0.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.base import check_pairs
from classifiers.features import STRUCT_NAMES, FeatureSpec, Single, struct_matrix
from classifiers.linear import LinearStack, sigmoid
from classifiers.answer_scan import choice_and_letters, is_refusal
from classifiers.rules import final_answer_failed, is_multiple_choice

#: names of the extra dense columns after the answer's structural features
EXTRA_NAMES: tuple[str, ...] = tuple(f"prompt_{n}" for n in STRUCT_NAMES) + (
    "multiple_choice", "no_choice", "empty", "refusal", "log_answer_prompt_ratio",
    "distinct_letters",
)
#: the prompt-structure featuriser of the extra columns (fixed: the prompt is context here)
PROMPT_SPEC = FeatureSpec(bits=8, char_ngrams=(), word_ngrams=(1,), head=2048, tail=1024)


def rule_columns(prompts: Sequence[str], answers: Sequence[str],
                 scans: Sequence[tuple[str | None, set[str]]] | None = None) -> np.ndarray:
    """Per pair: multiple_choice, no_choice, empty, refusal, log length ratio, distinct letters (``scans``:
    each answer's ``choice_and_letters``, when the caller has them)."""
    out = np.zeros((len(prompts), 6))
    kinds: dict[str, bool] = {}                  # is_multiple_choice, once per distinct prompt
    for i, (p, a) in enumerate(zip(prompts, answers)):
        mc = kinds.get(p)
        if mc is None:
            mc = kinds[p] = is_multiple_choice(p)
        empty = not a.strip()
        # rules.extract_choice(a), rules.answer_letters(a)
        choice, letters = scans[i] if scans is not None else choice_and_letters(a)
        out[i, 0] = mc
        out[i, 1] = mc and not empty and choice is None
        out[i, 2] = empty
        out[i, 3] = (not empty) and is_refusal(a)    # rules.is_refusal(a)
        out[i, 4] = math.log1p(len(a)) - math.log1p(len(p))
        out[i, 5] = min(len(letters), 5)
    return out


def extra_columns(prompts: Sequence[str], answers: Sequence[str],
                  scans: Sequence[tuple[str | None, set[str]]] | None = None) -> np.ndarray:
    """The dense columns :data:`EXTRA_NAMES` (prompt structure and rule signals; ``scans`` as
    :func:`rule_columns` takes them)."""
    if len(prompts) == 1:        # the single-text path: the same numbers, without the batch machinery
        prompt_struct = np.array([Single(prompts[0], PROMPT_SPEC).struct_list()])
    else:                        # once per distinct prompt (a prompt's answers by several models share it)
        index: dict[str, int] = {}
        slot = np.fromiter((index.setdefault(p, len(index)) for p in prompts), dtype=np.int64, count=len(prompts))
        distinct = list(index) if len(index) > 1 else list(prompts)   # one text alone takes the single-text path
        prompt_struct = struct_matrix(distinct, PROMPT_SPEC)
        if len(index) > 1:
            prompt_struct = prompt_struct[slot]
    return np.hstack([prompt_struct, rule_columns(prompts, answers, scans)])


def rules_failed(prompts: Sequence[str], answers: Sequence[str], extra: np.ndarray) -> np.ndarray:
    """Per pair, whether the answer fails a rule: no_choice, empty or refusal (read from ``extra``, the
    pairs' :func:`extra_columns`), or no stated number or output (:func:`classifiers.rules.final_answer_failed`).
    The trained checkers score these 1.0."""
    mc = len(STRUCT_NAMES)                   # multiple_choice; no_choice, empty, refusal follow it
    return extra[:, mc + 1: mc + 4].any(axis=1) | final_answer_failed(prompts, answers, extra[:, mc] != 0)


class LinearAnswerChecker:
    """Trained answer checker (:class:`classifiers.base.AnswerChecker`) read from an artifact."""

    def __init__(self, stack: LinearStack, name: str = "linear-checker") -> None:
        if stack.struct_mean.shape[0] != len(STRUCT_NAMES) + len(EXTRA_NAMES):
            raise ValueError("answer checker dense features do not match EXTRA_NAMES")
        self.stack = stack
        self.name = name

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        if isinstance(prompts, str) or isinstance(answers, str):
            raise TypeError("score() takes sequences; use score_one() for one pair")
        prompts, answers = list(prompts), list(answers)
        check_pairs(prompts, answers)
        extra = extra_columns(prompts, answers)
        scores = sigmoid(self.stack.logits(answers, extra))
        scores[rules_failed(prompts, answers, extra)] = 1.0
        return scores

    def score_one(self, prompt: str, answer: str) -> float:
        return float(self.score([prompt], [answer])[0])

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "LinearAnswerChecker":
        return cls(LinearStack.from_artifact(meta, arrays), name=str(meta.get("name", "linear-checker")))
