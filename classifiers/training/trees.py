"""Export a fitted scikit-learn tree ensemble to :class:`classifiers.trees.TreeEnsemble` (training only).

Reads the fitted estimator's attributes; imports nothing from scikit-learn itself.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from classifiers.trees import TreeEnsemble


def from_sklearn(model: Any, n_features: int) -> TreeEnsemble:
    """Export a fitted binary ``sklearn.ensemble.GradientBoostingClassifier``."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right", "value")}
    roots, offset, depth = [], 0, 0
    for est in model.estimators_[:, 0]:
        t = est.tree_
        idx = np.arange(t.node_count)
        leaf = t.children_left < 0
        parts["feature"].append(np.where(leaf, 0, t.feature))
        parts["threshold"].append(np.where(leaf, np.inf, t.threshold))
        parts["left"].append(np.where(leaf, idx, t.children_left) + offset)
        parts["right"].append(np.where(leaf, idx, t.children_right) + offset)
        parts["value"].append(np.where(leaf, t.value[:, 0, 0] * model.learning_rate, 0.0))
        roots.append(offset)
        offset += t.node_count
        depth = max(depth, int(t.max_depth))
    base = float(np.ravel(model._raw_predict_init(np.zeros((1, n_features))))[0])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return TreeEnsemble(feature=arrays["feature"].astype(np.intp), threshold=arrays["threshold"].astype(float),
                        left=arrays["left"].astype(np.intp), right=arrays["right"].astype(np.intp),
                        value=arrays["value"].astype(float), roots=np.array(roots, dtype=np.intp),
                        depth=depth, base=base, n_features=n_features)
