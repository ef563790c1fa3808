"""Fitting a :class:`~classifiers.linear.LinearStack` with scikit-learn (training only).

Heads are ridge regressions on ``[hashed features, standardised dense features]``, each on the
training rows that have its target; the output layer is a logistic regression on
``[head predictions, standardised dense features]`` where a training row's head prediction is
out-of-fold (K-fold), so the output layer learns how much to trust the heads on unseen text.
Estimators follow scikit-learn's contract: ``__init__`` stores parameters, ``fit`` returns self,
learned state ends in ``_``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold

from classifiers.features import FeatureSpec
from classifiers.linear import LinearStack


@dataclass
class HeadTarget:
    """A head's regression target; ``mask`` marks rows where it is known."""

    values: np.ndarray
    mask: np.ndarray


@dataclass
class StackFitter:
    """Fits heads + output layer; ``stack_`` is the exportable :class:`LinearStack`."""

    spec: FeatureSpec
    alpha: float = 10.0
    C: float = 1.0
    folds: int = 5
    seed: int = 0
    ridges_: dict[str, Ridge] = field(default_factory=dict, init=False)
    output_: LogisticRegression | None = field(default=None, init=False)
    stack_: LinearStack | None = field(default=None, init=False)

    def fit(self, hashed: sparse.csr_matrix, dense: np.ndarray, train: np.ndarray,
            label: np.ndarray, heads: Mapping[str, HeadTarget],
            sample_weight: np.ndarray | None = None) -> "StackFitter":
        """``hashed`` (n, 2**bits) and ``dense`` (n, S) cover all rows; only ``train`` rows are
        used. ``label`` is the 0/1 output target."""
        return self.fit_heads(hashed, dense, train, heads).fit_output(label, train, sample_weight)

    def fit_heads(self, hashed: sparse.csr_matrix, dense: np.ndarray, train: np.ndarray,
                  heads: Mapping[str, HeadTarget]) -> "StackFitter":
        """First stage: standardise ``dense`` and fit the ridge heads (``head_preds_``: per row,
        out-of-fold on the head's own training rows)."""
        self.mean_ = dense[train].mean(axis=0)
        scale = dense[train].std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        self.z_ = (dense - self.mean_) / self.scale_
        design = sparse.hstack([hashed, sparse.csr_matrix(self.z_)], format="csr")
        self.head_names_ = list(heads)
        self.head_preds_ = np.column_stack([self._fit_head(name, design, train, t)
                                            for name, t in heads.items()])
        return self

    def fit_output(self, label: np.ndarray, train: np.ndarray,
                   sample_weight: np.ndarray | None = None, C: float | None = None) -> "StackFitter":
        """Second stage (cheap, so it can be re-run over a grid of ``C``)."""
        out_x = np.hstack([self.head_preds_, self.z_])
        weight = None if sample_weight is None else sample_weight[train]
        self.output_ = LogisticRegression(C=self.C if C is None else C, max_iter=5000).fit(
            out_x[train], label[train], sample_weight=weight)
        self.stack_ = self._export(self.head_names_, self.mean_, self.scale_)
        return self

    def output_logits(self) -> np.ndarray:
        """Output-layer logits of every row from the (out-of-fold) head predictions."""
        return self.output_.decision_function(np.hstack([self.head_preds_, self.z_]))

    def _fit_head(self, name: str, design: sparse.csr_matrix, train: np.ndarray,
                  target: HeadTarget) -> np.ndarray:
        """Fit one ridge head; return its predictions for every row, out-of-fold on its rows."""
        rows = np.flatnonzero(train & target.mask)
        ridge = Ridge(alpha=self.alpha).fit(design[rows], target.values[rows])
        self.ridges_[name] = ridge
        pred = ridge.predict(design)
        folds = KFold(self.folds, shuffle=True, random_state=self.seed)
        for fit_idx, held_idx in folds.split(rows):
            fold = Ridge(alpha=self.alpha).fit(design[rows[fit_idx]], target.values[rows[fit_idx]])
            pred[rows[held_idx]] = fold.predict(design[rows[held_idx]])
        return pred

    def _export(self, names: list[str], mean: np.ndarray, scale: np.ndarray) -> LinearStack:
        n_buckets = self.spec.n_buckets
        coefs = np.column_stack([self.ridges_[n].coef_ for n in names])
        intercepts = np.array([self.ridges_[n].intercept_ for n in names], dtype=float)
        out = self.output_.coef_.ravel()
        out_heads, out_struct = out[:len(names)], out[len(names):]
        return LinearStack(spec=self.spec, table=coefs[:n_buckets] @ out_heads,
                           struct_coef=coefs[n_buckets:] @ out_heads + out_struct,
                           struct_mean=mean, struct_scale=scale,
                           bias=float(intercepts @ out_heads + self.output_.intercept_[0]),
                           head_names=tuple(names))

    def reference_logits(self, hashed: sparse.csr_matrix, dense: np.ndarray) -> np.ndarray:
        """The fitted scikit-learn pipeline's logits (full-data heads), for round-trip checks."""
        stack = self.stack_
        z = (dense - stack.struct_mean) / stack.struct_scale
        design = sparse.hstack([hashed, sparse.csr_matrix(z)], format="csr")
        heads = np.column_stack([self.ridges_[n].predict(design) for n in stack.head_names])
        return self.output_.decision_function(np.hstack([heads, z]))
