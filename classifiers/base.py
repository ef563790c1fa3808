"""The two scorer contracts every classifier and answer checker follows.

A *classifier* looks at a prompt and returns P(the strong model is needed); an *answer checker*
looks at a (prompt, answer) pair and returns P(the answer is inadequate). Both are pure: same input,
same output; no I/O, no clock, no randomness. Deciding (comparing with a threshold) is the policy
engine's job, not theirs.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Classifier(Protocol):
    """Scores prompts: P(strong model needed) in [0, 1]."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Return float64 scores of shape ``(len(texts),)``, each in [0, 1]."""
        ...

    def score_one(self, text: str) -> float:
        """Score a single prompt; equals ``score([text])[0]``."""
        ...


@runtime_checkable
class AnswerChecker(Protocol):
    """Scores (prompt, answer) pairs: P(answer inadequate) in [0, 1]."""

    name: str

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """Return float64 scores of shape ``(len(prompts),)``, each in [0, 1]."""
        ...

    def score_one(self, prompt: str, answer: str) -> float:
        """Score a single pair; equals ``score([prompt], [answer])[0]``."""
        ...


def check_pairs(prompts: Sequence[str], answers: Sequence[str]) -> None:
    """Raise ``ValueError`` unless prompts and answers have the same length."""
    if len(prompts) != len(answers):
        raise ValueError(f"prompts and answers differ in length: {len(prompts)} != {len(answers)}")
