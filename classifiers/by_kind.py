"""A prompt classifier whose score is shifted per answer kind (``classifiers.extract.prompt_kind``).

Why: a policy's threshold is one number, but what stands behind the classifier differs by kind. On
multiple-choice prompts the answer checker judges the cheap answer and escalates the bad ones; on
numbers, code and open text it abstains (``classifiers.extract.checker_judges``; only an answer that states
no final number or output at all fails there), so there the classifier is the main signal and must send more
prompts to the strong model by itself. The shift is
added to the logit: +0.25 moves a 0.3 threshold to about 0.25 for those kinds. Choice prompts keep the
base score exactly.

Measured (``python benchmarks/bench_policies.py --split test --split calibration``, llmrouter: the only
folder of mostly non-choice prompts): with the ``default`` classifier alone at 0.3 it sent 1.3% of test
prompts to the strong model and kept 90.4% of its quality, 0.1 point below random routing at that share;
with the shift, 7.3% and 92.0% (random: 91.1%). Multiple-choice folders do not move.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.extract import prompt_kind

#: logit shift per prompt kind (a kind not listed: 0)
SHIFTS: Mapping[str, float] = {"choice": 0.0, "number": 0.25, "code": 0.25, "text": 0.25}
_EPS = 1e-12


def shift_one(score: float, shift: float) -> float:
    """``sigmoid(logit(score) + shift)``; the score itself when the shift is zero."""
    if shift == 0:
        return score
    s = min(max(score, _EPS), 1 - _EPS)
    return 1.0 / (1.0 + math.exp(-(math.log(s / (1 - s)) + shift)))


def shifted(scores: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """:func:`shift_one` of every score (the same arithmetic, so one prompt scores as in a batch)."""
    out = np.array(scores, dtype=np.float64)
    for i in np.flatnonzero(shifts != 0):
        out[i] = shift_one(float(out[i]), float(shifts[i]))
    return out


class KindShiftedClassifier:
    """A :class:`classifiers.base.Classifier` wrapping another, its score shifted per prompt kind."""

    def __init__(self, base: Any, shifts: Mapping[str, float] = SHIFTS, name: str = "by-kind") -> None:
        self.base = base
        self.shifts = dict(shifts)
        self.name = name

    def _shifts(self, texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((self.shifts.get(prompt_kind(t), 0.0) for t in texts), dtype=np.float64, count=len(texts))

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts; use score_one() for one text")
        texts = list(texts)
        return shifted(np.asarray(self.base.score(texts), dtype=np.float64), self._shifts(texts))

    def score_one(self, text: str) -> float:
        return shift_one(float(self.base.score_one(text)), self.shifts.get(prompt_kind(text), 0.0))
