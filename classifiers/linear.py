"""The trained prompt classifier's inference: a small linear stack over hashed text features.

    heads  = hashed(text) @ heads_table + z @ head_struct + head_bias   (H ridge heads, e.g. the
             cheap model's answer length, its failure, the quality gain)
    logit  = heads @ out_heads + z @ out_struct + out_bias                 (logistic output layer)
    score  = sigmoid(logit)

Being linear up to the sigmoid, the stack is stored collapsed into one weight per hash bucket.

``hashed`` and the structural features are :mod:`classifiers.features`; ``z`` is the structural
vector standardised with the training mean and scale. Every parameter is a plain numpy array
read from a pickle-free artifact (:mod:`classifiers.artifact`); no scikit-learn at inference.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.features import STRUCT_NAMES, FeatureSpec, Single, chunks

MODEL = "linear-hashed-v1"


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically safe logistic, float64."""
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


@dataclass(frozen=True)
class LinearStack:
    """The stack collapsed to one linear map (exact: every layer is linear before the sigmoid):
    ``logit = hashed(text) @ table + z @ struct_coef + bias``, with
    ``table = heads_table @ out_heads``, ``struct_coef = head_struct @ out_heads + out_struct`` and
    ``bias = head_bias @ out_heads + out_bias``."""

    spec: FeatureSpec
    table: np.ndarray         # (2**bits,)
    struct_coef: np.ndarray   # (S,)
    struct_mean: np.ndarray   # (S,)
    struct_scale: np.ndarray  # (S,)
    bias: float
    head_names: tuple[str, ...] = ()

    ARRAYS = ("table", "struct_coef", "struct_mean", "struct_scale")

    def __post_init__(self) -> None:
        n_struct = self.struct_mean.shape[0]
        expect = {"table": (self.spec.n_buckets,), "struct_coef": (n_struct,),
                  "struct_scale": (n_struct,)}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        if not np.all(np.isfinite(self.table)) or not np.all(self.struct_scale > 0):
            raise ValueError("table must be finite and struct_scale positive")
        # z @ struct_coef + bias == dense @ dense_coef + dense_bias (standardisation folded in)
        object.__setattr__(self, "dense_coef", self.struct_coef / self.struct_scale)
        object.__setattr__(self, "dense_bias", self.bias - float(self.struct_mean @ self.dense_coef))
        object.__setattr__(self, "_dense_coef_list", self.dense_coef.tolist())

    def logits(self, texts: Sequence[str], extra: np.ndarray | None = None) -> np.ndarray:
        """Output logits of ``texts``; ``extra`` are further raw dense columns (answer checker)."""
        out = np.empty(len(texts))
        for off, batch in chunks(texts, self.spec):
            dense = batch.struct()
            if extra is not None:
                dense = np.hstack([dense, extra[off:off + batch.n]])
            out[off:off + batch.n] = batch.hashed_sum(self.table) + dense @ self.dense_coef + self.dense_bias
        return out

    def logit_one(self, text: str, extra: np.ndarray | None = None) -> float:
        """The logit of one text by the single-text path; ``extra``: its further raw dense columns."""
        single = Single(text, self.spec)
        struct = single.struct_list()
        if extra is not None:
            struct = [*struct, *extra.tolist()]
        return self.logit_of(single, struct)

    def logit_of(self, single: Single, dense: list[float]) -> float:
        """The logit of one featurised text whose raw dense columns are ``dense`` (plain floats: a dot
        product of a few dozen terms costs less in Python than building an array for it)."""
        dense_sum = math.fsum(map(operator.mul, dense, self._dense_coef_list))
        return single.hashed_total(self.table) + dense_sum + self.dense_bias

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"model": MODEL, "features": self.spec.to_json(), "bias": float(self.bias),
                "head_names": list(self.head_names)}
        return meta, {name: np.asarray(getattr(self, name), dtype=np.float64) for name in self.ARRAYS}

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "LinearStack":
        spec = FeatureSpec.from_json(meta["features"])
        parts = {name: np.ascontiguousarray(arrays[name], dtype=np.float64) for name in cls.ARRAYS}
        return cls(spec=spec, bias=float(meta["bias"]), head_names=tuple(meta.get("head_names", ())),
                   **parts)


class LinearClassifier:
    """Trained prompt classifier (:class:`classifiers.base.Classifier`) read from an artifact."""

    def __init__(self, stack: LinearStack, name: str = "linear") -> None:
        if stack.struct_mean.shape[0] != len(STRUCT_NAMES):
            raise ValueError("a prompt classifier's dense features are the structural ones only")
        self.stack = stack
        self.name = name

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts; use score_one() for one text")
        if len(texts) == 1:  # the single-text path, so score([x])[0] == score_one(x) exactly
            return np.array([self.score_one(texts[0])])
        return sigmoid(self.stack.logits(list(texts)))

    def score_one(self, text: str) -> float:
        z = self.stack.logit_one(text)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        ez = math.exp(z)
        return ez / (1.0 + ez)

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "LinearClassifier":
        return cls(LinearStack.from_artifact(meta, arrays), name=str(meta.get("name", "linear")))
