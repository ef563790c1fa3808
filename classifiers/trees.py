"""A gradient-boosted tree ensemble as plain numpy arrays, evaluated vectorised (inference).

Every tree's nodes are concatenated into five arrays: ``feature`` (int), ``threshold``, ``left``,
``right`` (node indices, global) and ``value`` (the leaf's contribution, learning rate folded in).
A leaf points to itself on both sides with an infinite threshold, so walking ``depth`` steps
from every tree's root (``roots``) lands every row on a leaf of every tree at once:

    node = roots                                   (n_rows, n_trees)
    repeat depth times: node = where(x[feature[node]] <= threshold[node], left[node], right[node])
    raw  = base + sum(value[node], axis=1)

Comparisons use float32 inputs, as scikit-learn's trees do (they split on float32 features).
:func:`classifiers.training.trees.from_sklearn` exports a fitted binary ``GradientBoostingClassifier``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class TreeEnsemble:
    """Sum of regression trees plus a base score (a logit for a binary classifier)."""

    feature: np.ndarray    # (nodes,) intp
    threshold: np.ndarray  # (nodes,) float64; +inf at leaves
    left: np.ndarray       # (nodes,) intp
    right: np.ndarray      # (nodes,) intp
    value: np.ndarray      # (nodes,) float64; 0 at inner nodes
    roots: np.ndarray      # (trees,) intp
    depth: int
    base: float
    n_features: int

    ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")

    def __post_init__(self) -> None:
        n = self.value.shape[0]
        for name in ("feature", "threshold", "left", "right"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"tree array {name!r} has shape {getattr(self, name).shape}, expected ({n},)")
        for name in ("left", "right", "roots"):
            arr = getattr(self, name)
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise ValueError(f"tree array {name!r} points outside the nodes")
        if n and (self.feature.min() < 0 or self.feature.max() >= self.n_features):
            raise ValueError("tree features outside the input columns")
        if not (np.all(np.isfinite(self.value)) and np.isfinite(self.base)) or self.depth < 0:
            raise ValueError("tree values must be finite and depth >= 0")

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (logits) of the rows of ``x`` (shape (n, n_features))."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {x.shape}")
        x32 = x.astype(np.float32).astype(np.float64).ravel()     # row-major: row i's feature f at i * n_features + f
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()
        row_start = (np.arange(x.shape[0], dtype=np.intp) * self.n_features)[:, None]
        for _ in range(self.depth):      # take() on flat indices: the same values as 2-D fancy indexing, faster
            go_left = x32.take(row_start + self.feature.take(node)) <= self.threshold.take(node)
            node = np.where(go_left, self.left.take(node), self.right.take(node))
        return self.base + self.value.take(node).sum(axis=1)

    def to_artifact(self, prefix: str = "tree_") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"depth": self.depth, "base": self.base, "n_features": self.n_features}
        return meta, {prefix + k: np.asarray(getattr(self, k)) for k in self.ARRAYS}

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                      prefix: str = "tree_") -> "TreeEnsemble":
        ints = {k: np.ascontiguousarray(arrays[prefix + k], dtype=np.intp)
                for k in ("feature", "left", "right", "roots")}
        return cls(threshold=np.ascontiguousarray(arrays[prefix + "threshold"], dtype=np.float64),
                   value=np.ascontiguousarray(arrays[prefix + "value"], dtype=np.float64),
                   depth=int(meta["depth"]), base=float(meta["base"]),
                   n_features=int(meta["n_features"]), **ints)

