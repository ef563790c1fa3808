"""A hand-written prompt scorer: no training, no artifact, a few microseconds per prompt.

Signals (each cheap to compute with one precompiled regex over at most ``max_chars`` characters):
length, code markers, math/calculation markers, reasoning keywords (prove, derive, step by step,
analyze...), number of questions, constraint words, and the number of multiple-choice options.
A weighted sum of them is squashed with a logistic to [0, 1]. Higher = more likely to need the
strong model.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

_CODE = re.compile(r"```|\bdef |\bclass |\breturn\b|\bimport |#include|\bfunction\b|=>|;\s*$|\{\s*$",
                   re.MULTILINE)
_MATH = re.compile(r"\\frac|\\sqrt|\\int|\\sum|\$|\^|\bsqrt\b|\d\s*[-+*/=]\s*\d|\b(?:calculate|compute|"
                   r"solve|equation|integral|derivative|probability|how many|how much)\b", re.IGNORECASE)
_REASON = re.compile(r"\b(?:prove|proof|derive|derivation|step[- ]by[- ]step|analy[sz]e|explain why|"
                     r"justify|evaluate|compare|optimi[sz]e|design|implement|algorithm|complexity|"
                     r"theorem|lemma|reason)\b", re.IGNORECASE)
_CONSTRAINT = re.compile(r"\b(?:must|should|at least|at most|exactly|without|only|ensure|"
                         r"except|unless|not)\b", re.IGNORECASE)
_OPTION = re.compile(r"^\s*\(?[A-J][.)]\s", re.MULTILINE)
_DIGIT = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class HeuristicWeights:
    """Weights of the heuristic's signals; ``bias`` centres a plain short question near 0.3."""

    bias: float = -1.6
    log_length: float = 0.35       # per unit of log1p(chars / 100)
    code: float = 0.25             # per code marker (capped)
    math: float = 0.30             # per math marker (capped)
    reasoning: float = 0.45        # per reasoning keyword (capped)
    questions: float = 0.15        # per question mark beyond the first (capped)
    constraints: float = 0.08      # per constraint word (capped)
    options: float = 0.06          # per multiple-choice option (capped at 10)
    numbers: float = 0.04          # per number in the prompt (capped)
    cap: int = 8


class HeuristicClassifier:
    """Hand-weighted prompt scorer conforming to :class:`classifiers.base.Classifier`."""

    name = "heuristic"

    def __init__(self, weights: HeuristicWeights | None = None, max_chars: int = 4000) -> None:
        self.weights = weights if weights is not None else HeuristicWeights()
        self.max_chars = max_chars

    def _logit(self, text: str) -> float:
        w = self.weights
        cap = w.cap
        n = len(text)
        if n > self.max_chars:
            text = text[: self.max_chars]
        z = w.bias + w.log_length * math.log1p(n / 100.0)
        z += w.code * min(len(_CODE.findall(text)), cap)
        z += w.math * min(len(_MATH.findall(text)), cap)
        z += w.reasoning * min(len(_REASON.findall(text)), cap)
        z += w.questions * min(max(text.count("?") - 1, 0), cap)
        z += w.constraints * min(len(_CONSTRAINT.findall(text)), cap)
        z += w.options * min(len(_OPTION.findall(text)), 10)
        z += w.numbers * min(len(_DIGIT.findall(text)), cap)
        return z

    def score_one(self, text: str) -> float:
        z = self._logit(text)
        return 1.0 / (1.0 + math.exp(-z))

    def score(self, texts: Sequence[str]) -> np.ndarray:
        score_one = self.score_one
        return np.fromiter((score_one(t) for t in texts), dtype=np.float64, count=len(texts))
