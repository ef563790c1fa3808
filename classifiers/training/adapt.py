"""Fit the adapted scorers of :mod:`classifiers.adapted` on labelled traffic (training only: scikit-learn).

    fit_adapted_classifier(prompts, strong_needed, base="default")          -> (AdaptedClassifier, report)
    fit_adapted_checker(prompts, answers, inadequate, base="default")       -> (AdaptedChecker, report)

One L2 logistic regression over ``[hashed text features, standardised structural features + the base
scorer's logit]``; its regularisation C is chosen by stratified K-fold cross-validated log loss among
:data:`C_GRID`, so with few labels it stays close to the base scorer. Rows may carry weights (outcome
data mixed in beside traces). The report's ``beats_base`` says whether that cross-validated loss beats
a logistic recalibration of the base scorer's logit alone by :data:`BEATS_BASE_BY`, with at least
:data:`EVIDENCE` labels of either class; when it does not,
the labels taught nothing the base did not know (``cascade train --traces`` then keeps the base).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from classifiers.adapted import AdaptedChecker, AdaptedClassifier, checker_extra, logit
from classifiers.features import FeatureSpec, sparse_matrix, struct_matrix
from classifiers.linear import LinearStack
from policies.errors import ConfigError

ADAPT_SPEC = FeatureSpec(bits=14, char_ngrams=(), word_ngrams=(1, 2), head=1024, tail=512)
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BASE_BOOST = 10.0        # the base logit's column is scaled up 10x: its L2 penalty is 100x weaker than the others'
MIN_LABELS = 20          # fewer labelled requests (or fewer than MIN_CLASS of either class): nothing is fitted
MIN_CLASS = 4
BEATS_BASE_BY = 0.005    # cross-validated log loss the adapted fit must gain over the recalibrated base
EVIDENCE = 30            # ... with at least this many labels of either class (fewer: the base is kept)
MIN_KIND_LABELS = 10     # an adapted checker judges the answer kinds with at least this many labels


def fit_adapted_classifier(prompts: Sequence[str], strong_needed: np.ndarray, *, base: str = "default",
                           weights: np.ndarray | None = None, seed: int = 0) -> tuple[AdaptedClassifier, dict[str, Any]]:
    from classifiers import load_classifier
    prompts = list(prompts)
    base_scorer = load_classifier(base)
    extra = logit(base_scorer.score(prompts)).reshape(-1, 1)
    stack, report = _fit(prompts, extra, np.asarray(strong_needed, dtype=int), weights, seed, base_column=0)
    return AdaptedClassifier(stack, base_scorer, base), report


def fit_adapted_checker(prompts: Sequence[str], answers: Sequence[str], inadequate: np.ndarray, *,
                        base: str = "default", weights: np.ndarray | None = None,
                        seed: int = 0) -> tuple[AdaptedChecker, dict[str, Any]]:
    from classifiers import load_answer_checker
    prompts, answers = list(prompts), list(answers)
    base_scorer = load_answer_checker(base)
    extra = checker_extra(prompts, answers, base_scorer.score(prompts, answers))
    stack, report = _fit(answers, extra, np.asarray(inadequate, dtype=int), weights, seed, base_column=0)
    kinds = learned_kinds(prompts)
    return AdaptedChecker(stack, base_scorer, base, kinds=kinds), {**report, "judges_kinds": list(kinds)}


def learned_kinds(prompts: Sequence[str]) -> tuple[str, ...]:
    """The answer kinds (:func:`classifiers.extract.prompt_kind`) with at least MIN_KIND_LABELS labels."""
    from collections import Counter
    from classifiers.extract import prompt_kind
    counts = Counter(prompt_kind(p) for p in prompts)
    return tuple(sorted(k for k, n in counts.items() if n >= MIN_KIND_LABELS))


def _fit(texts: list[str], extra: np.ndarray, label: np.ndarray, weights: np.ndarray | None,
         seed: int, base_column: int) -> tuple[LinearStack, dict[str, Any]]:
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    _enough(label)
    dense = np.hstack([struct_matrix(texts, ADAPT_SPEC), extra])
    mean = dense.mean(axis=0)
    scale = dense.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    scale[len(scale) - extra.shape[1]] /= BASE_BOOST      # the base logit: barely penalised (warm start)
    hashed = sparse_matrix(texts, ADAPT_SPEC)
    used = np.flatnonzero(hashed.getnnz(axis=0))          # buckets no training text hits keep weight 0
    design = sparse.hstack([hashed[:, used], sparse.csr_matrix((dense - mean) / scale)], format="csr")
    losses = {c: _cv_loss(design, label, weights, c, seed) for c in C_GRID}
    best = min(C_GRID, key=lambda c: (losses[c], c))
    model = LogisticRegression(C=best, max_iter=5000).fit(design, label, sample_weight=weights)
    coef = model.coef_.ravel()
    table = np.zeros(ADAPT_SPEC.n_buckets)
    table[used] = coef[:len(used)]
    stack = LinearStack(spec=ADAPT_SPEC, table=table, struct_coef=coef[len(used):].copy(), struct_mean=mean,
                        struct_scale=scale, bias=float(model.intercept_[0]), head_names=("adapted",))
    base_loss = _cv_loss(extra[:, base_column:base_column + 1], label, weights, 1e4, seed, monotone=True)
    return stack, {"n": int(len(label)), "positives": int(label.sum()), "C": best,
                   "cv_log_loss": {str(c): round(v, 5) for c, v in losses.items()},
                   "base_cv_log_loss": round(base_loss, 5),
                   "beats_base": bool(losses[best] < base_loss - BEATS_BASE_BY
                                      and min(label.sum(), len(label) - label.sum()) >= EVIDENCE)}


def _enough(label: np.ndarray) -> None:
    n, pos = len(label), int(label.sum())
    if n < MIN_LABELS or min(pos, n - pos) < MIN_CLASS:
        raise ConfigError(f"too few labelled requests to train on: {n} labelled, {pos} with an inadequate cheap "
                          f"answer (need at least {MIN_LABELS}, and {MIN_CLASS} of each kind): shadow more traffic "
                          "(shadow.rate) or collect feedback")


def _cv_loss(design: Any, label: np.ndarray, weights: np.ndarray | None, c: float, seed: int,
             monotone: bool = False) -> float:
    """Cross-validated log loss; ``monotone`` (one column: the base's logit): a fold whose fit turns
    the base's ranking round predicts the fold's base rate instead (the base kept as it is ranks as
    it ranks; only its thresholds move)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    folds = StratifiedKFold(n_splits=min(5, int(min(label.sum(), len(label) - label.sum()))), shuffle=True,
                            random_state=seed)
    total, weight_sum = 0.0, 0.0
    for fit_idx, held_idx in folds.split(np.zeros(len(label)), label):
        w = None if weights is None else weights[fit_idx]
        model = LogisticRegression(C=c, max_iter=5000).fit(design[fit_idx], label[fit_idx], sample_weight=w)
        p = np.clip(model.predict_proba(design[held_idx])[:, 1], 1e-9, 1 - 1e-9)
        if monotone and model.coef_.ravel()[0] <= 0:
            p = np.full(len(held_idx), np.clip(np.average(label[fit_idx], weights=w), 1e-9, 1 - 1e-9))
        y = label[held_idx]
        hw = np.ones(len(held_idx)) if weights is None else weights[held_idx]
        total += float(-(hw * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum())
        weight_sum += float(hw.sum())
    return total / max(weight_sum, 1e-12)
