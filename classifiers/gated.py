"""A prompt classifier made of linear experts, one chosen per prompt by its structure (inference).

Some prompts are long multiple-choice exam questions (6 to 11 lettered options, e.g. MMLU-Pro);
their routing signal differs from the rest (4-option quizzes, open questions, code). The gate
reads the structural ``options`` count (:data:`classifiers.features.STRUCT_NAMES`) and sends a
prompt to expert 1 when ``low <= options <= high``, else to expert 0. Each expert is a
:class:`~classifiers.linear.LinearStack`; the experts' tables are stacked so a batch is scored
in one pass over its hashed n-grams (:meth:`classifiers.features.Batch.hashed_sum` with
per-text offsets). Numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.features import STRUCT_NAMES, Single, chunks
from classifiers.linear import LinearStack, sigmoid

MODEL = "gated-linear-v1"
_OPTIONS = STRUCT_NAMES.index("options")


@dataclass(frozen=True)
class OptionGate:
    """Expert 1 for prompts with ``low <= options <= high`` lettered option lines, else expert 0."""

    low: int
    high: int

    def experts(self, options: np.ndarray) -> np.ndarray:
        return ((options >= self.low) & (options <= self.high)).astype(np.intp)

    def expert(self, options: float) -> int:
        return int(self.low <= options <= self.high)


class GatedLinearClassifier:
    """Trained prompt classifier (:class:`classifiers.base.Classifier`): two gated linear experts."""

    def __init__(self, experts: Sequence[LinearStack], gate: OptionGate, name: str = "gated-linear") -> None:
        if len(experts) != 2 or experts[0].spec != experts[1].spec:
            raise ValueError("a gated classifier needs two experts with the same features")
        for stack in experts:
            if stack.struct_mean.shape[0] != len(STRUCT_NAMES):
                raise ValueError("a prompt classifier's dense features are the structural ones only")
        self.experts, self.gate, self.name = tuple(experts), gate, name
        self.spec = experts[0].spec
        self._tables = np.concatenate([s.table for s in experts])
        self._coef = np.vstack([s.dense_coef for s in experts])
        self._bias = np.array([s.dense_bias for s in experts])

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty(len(texts))
        for off, batch in chunks(texts, self.spec):
            dense = batch.struct()
            which = self.gate.experts(dense[:, _OPTIONS])
            hashed = batch.hashed_sum(self._tables, which * self.spec.n_buckets)
            out[off:off + batch.n] = hashed + np.einsum("ij,ij->i", dense, self._coef[which]) + self._bias[which]
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts; use score_one() for one text")
        if len(texts) == 1:  # the single-text path, so score([x])[0] == score_one(x) exactly
            return np.array([self.score_one(texts[0])])
        return sigmoid(self.logits(list(texts)))

    def logit_one(self, text: str) -> float:
        single = Single(text, self.spec)
        struct = single.struct_list()
        return self.experts[self.gate.expert(struct[_OPTIONS])].logit_of(single, struct)

    def score_one(self, text: str) -> float:
        z = self.logit_one(text)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta: dict[str, Any] = {"model": MODEL, "gate": {"column": "options", "low": self.gate.low,
                                                          "high": self.gate.high}, "experts": []}
        arrays: dict[str, np.ndarray] = {}
        for i, stack in enumerate(self.experts):
            sub_meta, sub_arrays = stack.to_artifact()
            meta["experts"].append(sub_meta)
            arrays.update({f"expert{i}_{k}": v for k, v in sub_arrays.items()})
        meta["features"] = meta["experts"][0]["features"]
        return meta, arrays

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "GatedLinearClassifier":
        if meta["gate"].get("column") != "options":
            raise ValueError(f"unknown gate column {meta['gate'].get('column')!r}")
        experts = [LinearStack.from_artifact(sub, {k: arrays[f"expert{i}_{k}"] for k in LinearStack.ARRAYS})
                   for i, sub in enumerate(meta["experts"])]
        gate = OptionGate(int(meta["gate"]["low"]), int(meta["gate"]["high"]))
        return cls(experts, gate, name=str(meta.get("name", "gated-linear")))
