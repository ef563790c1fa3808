"""Boosted-tree inference (numpy arrays) against scikit-learn, and the tree answer checker."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import classifiers
from classifiers.artifact import write_artifact
from classifiers.training.trees import from_sklearn
from classifiers.trees import TreeEnsemble

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "mmlu_pro").exists(), reason="shared data not present")


def _fitted(depth: int = 3, trees: int = 60, seed: int = 0):
    from sklearn.ensemble import GradientBoostingClassifier
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, 7))
    x[:, 2] = rng.integers(-1, 2, size=600)  # a -1/0/1 column, like the signals' missing values
    y = ((x[:, 0] * x[:, 1] > 0) ^ (x[:, 2] > 0)).astype(int)
    gbm = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, learning_rate=0.1, subsample=0.8,
                                     random_state=seed).fit(x, y)
    return gbm, x


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_export_equals_sklearn(depth):
    gbm, x = _fitted(depth=depth)
    ens = from_sklearn(gbm, x.shape[1])
    assert np.max(np.abs(ens.raw(x) - gbm.decision_function(x))) < 1e-10
    probe = np.random.default_rng(1).normal(size=(50, 7)) * 3  # unseen values, incl. far outside
    assert np.max(np.abs(ens.raw(probe) - gbm.decision_function(probe))) < 1e-10
    assert ens.raw(x[:1])[0] == pytest.approx(gbm.decision_function(x[:1])[0], abs=1e-10)


def test_threshold_ties_follow_sklearn():
    gbm, x = _fitted()
    ens = from_sklearn(gbm, x.shape[1])
    inner = np.isfinite(ens.threshold)
    at = np.tile(x[:1], (int(inner.sum()), 1))
    at[np.arange(at.shape[0]), ens.feature[inner]] = ens.threshold[inner]  # exactly on a split
    assert np.max(np.abs(ens.raw(at) - gbm.decision_function(at))) < 1e-10


def test_artifact_round_trip_and_validation():
    gbm, x = _fitted()
    ens = from_sklearn(gbm, x.shape[1])
    meta, arrays = ens.to_artifact()
    again = TreeEnsemble.from_artifact(meta, arrays)
    assert np.array_equal(again.raw(x), ens.raw(x))
    with pytest.raises(ValueError):
        TreeEnsemble.from_artifact({**meta, "n_features": 3}, arrays)  # features outside the input
    bad = dict(arrays, tree_left=arrays["tree_left"] + 10_000)
    with pytest.raises(ValueError):
        TreeEnsemble.from_artifact(meta, bad)
    with pytest.raises(ValueError):
        ens.raw(x[:, :3])


@needs_data
def test_tree_checker_round_trip_matches_sklearn(tmp_path):
    """A small tree checker, fitted like train_tree_checker, scores like its scikit-learn parts."""
    from scipy import sparse

    from classifiers.training.data import load_dataset, load_responses
    from classifiers.features import FeatureSpec, sparse_matrix, struct_matrix
    from classifiers.training.fit import HeadTarget, StackFitter
    from classifiers.signals import signal_matrix
    from classifiers.training.train_checker import _export_tree_checker, _fit_trees
    from classifiers.tree_checker import _RULE_COLS
    from classifiers.checker import extra_columns

    data = load_dataset(DATA / "mmlu_pro").with_pair()
    data = data.subset(np.arange(len(data)) % 30 == 0)
    prompts = data.prompts
    answers = [a or "" for a in load_responses(DATA / "mmlu_pro", data, data.cheap)]
    qc, qs = data.score_of(data.cheap), data.score_of(data.strong)
    spec = FeatureSpec(bits=12, char_ngrams=(), word_ngrams=(1, 2), head=256, tail=512)
    dense = np.hstack([struct_matrix(answers, spec), extra_columns(prompts, answers)])
    hashed = sparse_matrix(answers, spec)
    train = np.arange(len(qc)) % 2 == 0
    every = np.ones(len(qc), dtype=bool)
    fitter = StackFitter(spec=spec, alpha=3.0, folds=2).fit_heads(
        hashed, dense, train, {"gain": HeadTarget(qs - qc, every), "inadequate": HeadTarget(1 - qc, every)})
    x = np.hstack([fitter.head_preds_, dense, signal_matrix(prompts, answers)])
    failed = dense[:, _RULE_COLS].any(axis=1)
    gbm = _fit_trees(x, (qs > qc).astype(int), train & ~failed, 3, 30, 0.1, 0)
    checker = _export_tree_checker(fitter, gbm, x.shape[1], "tiny-checker")
    meta, arrays = checker.to_artifact()
    path = write_artifact(tmp_path / "chk", {**meta, "kind": "answer_checker", "name": "tiny"}, arrays)
    loaded = classifiers.load_answer_checker(str(path))
    # reference: full-data ridge heads (not out-of-fold), then the scikit-learn trees
    z = (dense - fitter.mean_) / fitter.scale_
    design = sparse.hstack([hashed, sparse.csr_matrix(z)], format="csr")
    ref_heads = np.column_stack([fitter.ridges_[n].predict(design) for n in fitter.head_names_])
    ref_x = np.hstack([ref_heads, dense, signal_matrix(prompts, answers)])
    expected = np.where(failed, 1.0, 1.0 / (1.0 + np.exp(-gbm.decision_function(ref_x))))
    got = loaded.score(prompts, answers)
    assert np.max(np.abs(got - expected)) < 1e-9
    for i in range(0, len(prompts), 37):
        assert loaded.score_one(prompts[i], answers[i]) == pytest.approx(got[i], abs=1e-12)
    assert failed.any() and np.all(got[failed] == 1.0)


def test_tree_checker_sends_open_questions_to_the_fallback():
    """Prompts that are not multiple choice are scored by the linear fallback, not by the trees."""
    from classifiers.checker import LinearAnswerChecker
    from classifiers.features import FeatureSpec
    from classifiers.linear import LinearStack
    from classifiers.tree_checker import DENSE_NAMES, TextHeads, TreeAnswerChecker
    from classifiers.signals import SIGNAL_NAMES

    spec = FeatureSpec(bits=8, char_ngrams=(), word_ngrams=(1, 2), head=64, tail=64)
    rng = np.random.default_rng(3)
    heads = TextHeads(spec=spec, names=("gain",), tables=rng.normal(size=(1, 256)),
                      dense_coef=rng.normal(size=(1, len(DENSE_NAMES))), bias=np.zeros(1))
    n_in = 1 + len(DENSE_NAMES) + len(SIGNAL_NAMES)
    trees = TreeEnsemble(feature=np.zeros(1, np.intp), threshold=np.array([np.inf]), left=np.zeros(1, np.intp),
                         right=np.zeros(1, np.intp), value=np.array([2.0]), roots=np.zeros(1, np.intp), depth=1,
                         base=0.0, n_features=n_in)  # one leaf: every tree-scored pair gets sigmoid(2)
    fallback = LinearStack(spec=spec, table=rng.normal(size=256), struct_coef=rng.normal(size=len(DENSE_NAMES)),
                           struct_mean=np.zeros(len(DENSE_NAMES)), struct_scale=np.ones(len(DENSE_NAMES)), bias=-1.0)
    checker = TreeAnswerChecker(heads, trees, fallback=fallback)
    mc = "Pick one.\nA. red\nB. blue\nC. green"
    prompts = [mc, "Name the largest planet.", mc, "Write a haiku."]
    answers = ["Blue. The answer is (B).", "Jupiter.", "no letter here", "Rain on the roof"]
    got = checker.score(prompts, answers)
    linear = LinearAnswerChecker(fallback).score(prompts, answers)
    assert got[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert got[2] == 1.0  # the rule: no extractable choice
    assert got[1] == pytest.approx(linear[1], abs=1e-12) and got[3] == pytest.approx(linear[3], abs=1e-12)
    meta, arrays = checker.to_artifact()
    again = TreeAnswerChecker.from_artifact(meta, arrays)
    assert np.array_equal(again.score(prompts, answers), got)
    for p, a, s in zip(prompts, answers, got):
        assert again.score_one(p, a) == pytest.approx(s, abs=1e-12)
