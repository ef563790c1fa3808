"""Train the answer checker (training only: scikit-learn, scipy, pyarrow).

    python -m classifiers.training.train checker --data ../shared/data/mmlu_pro ... --out PATH

Rows: each pair's cheap answers where the data set has a responses table, split by prompt with
:mod:`classifiers.splits` (fit on ``train``, choose on ``calibration``, report ``test``).

``model="trees"`` (shipped): :class:`classifiers.tree_checker.TreeAnswerChecker`. Ridge text
heads (gain of escalating, answer wrongness) over the answer's hashed n-grams and dense columns;
their out-of-fold predictions on the training rows, the dense columns and the answer signals of
:mod:`classifiers.signals` feed a gradient-boosted tree ensemble (scikit-learn's
``GradientBoostingClassifier``, exported to numpy arrays). Rows a rule already fails are left out
of the trees' training (the rule decides them), and so are prompts that are not multiple choice:
those are scored by a linear fallback (the earlier linear checker's recipe). Chosen on
calibration: the trees' target and size. ``model="linear"``: the earlier :class:`classifiers.checker.LinearAnswerChecker`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq
from sklearn.ensemble import GradientBoostingClassifier

from classifiers.artifact import write_artifact
from classifiers.checker import LinearAnswerChecker, extra_columns
from classifiers.features import FeatureSpec, sparse_matrix, struct_matrix
from classifiers.linear import sigmoid
from classifiers.metrics import apgr
from classifiers.signals import signal_matrix
from classifiers.training.data import load_responses
from classifiers.training.fit import HeadTarget, StackFitter
from classifiers.training.rowmap import LOCAL, RowMap
from classifiers.training.train import CHECKER_SPEC, PairSet, _data_report, _objective, load_pairs
from classifiers.training.trees import from_sklearn
from classifiers.tree_checker import _MC_COL, _RULE_COLS, TextHeads, TreeAnswerChecker

#: (max_depth, n_estimators, learning_rate) of the tree ensembles compared on calibration
TREE_GRID: tuple[tuple[int, int, float], ...] = ((3, 200, 0.05), (2, 400, 0.05))


def train_answer_checker(data_dirs: Sequence[str | Path], cheap: str | None = None,
                         strong: str | None = None, out: str | Path | None = None, seed: int = 0,
                         *, model: str = "trees", **kwargs: Any) -> dict[str, Any]:
    """Train the answer checker (``model``: ``trees`` or ``linear``); write it to ``out``."""
    if model == "trees":
        return train_tree_checker(data_dirs, cheap, strong, out, seed, **kwargs)
    if model == "linear":
        return train_linear_checker(data_dirs, cheap, strong, out, seed, **kwargs)
    raise ValueError(f"unknown answer checker model {model!r}")


def train_tree_checker(data_dirs: Sequence[str | Path], cheap: str | None = None,
                       strong: str | None = None, out: str | Path | None = None, seed: int = 0,
                       *, spec: FeatureSpec = CHECKER_SPEC, alpha: float = 10.0,
                       targets: Sequence[str] = ("gain", "inadequate"),
                       tree_grid: Sequence[tuple[int, int, float]] = TREE_GRID,
                       name: str = "default", features: RowMap = LOCAL) -> dict[str, Any]:
    """Fit text heads, then trees for each (target, tree size); keep the best on calibration
    (``features``: where the rows' features are extracted; the fit is here)."""
    t0 = time.perf_counter()
    pairs = load_pairs(data_dirs, cheap, strong)
    rows = answer_rows(pairs, False)
    train = rows.split == "train"
    dense = np.hstack([features(struct_matrix, rows.answers, spec=spec),
                       features(extra_columns, rows.prompts, rows.answers)])
    hashed = features(sparse_matrix, rows.answers, spec=spec)
    fitter = StackFitter(spec=spec, alpha=alpha, seed=seed).fit_heads(hashed, dense, train, _text_heads(rows))
    x = np.hstack([fitter.head_preds_, dense, features(signal_matrix, rows.prompts, rows.answers)])
    failed, mc = dense[:, _RULE_COLS].any(axis=1), dense[:, _MC_COL] > 0
    fallback, fallback_logits = _linear_fallback(rows, hashed, dense, spec, alpha, seed)
    grid, models = _tree_grid(pairs, rows, x, train & ~failed & mc,
                              lambda raw: _with_rules(np.where(mc, raw, fallback_logits), failed),
                              targets, tree_grid, seed)
    best = max(range(len(grid)), key=lambda i: grid[i]["objective"])
    checker = _export_tree_checker(fitter, models[best], x.shape[1], name, fallback)
    scores = features(checker.score, rows.prompts, rows.answers)
    reference = _with_rules(np.where(mc, models[best].decision_function(x), fallback_logits), failed)
    report = {
        "kind": "answer_checker", "model": "trees", "name": name, "seed": seed, "target": grid[best]["target"],
        "data": _data_report(pairs), "alpha": alpha, "heads": list(fitter.head_names_),
        "rules": "empty / refusal / no extractable choice -> 1.0", "features": spec.to_json(),
        "trees_for": "multiple-choice prompts; the others: the linear checker (gain head -> logistic, C = 1)",
        "chosen": {k: grid[best][k] for k in ("target", "max_depth", "n_estimators", "learning_rate")},
        "grid": grid, "calibration_apgr": _checker_apgr(pairs, rows, scores, "calibration"),
        "test_apgr": _checker_apgr(pairs, rows, scores, "test"),
        "export_max_abs_diff": float(np.max(np.abs(scores - sigmoid(reference))[~train], initial=0.0)),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        meta, arrays = checker.to_artifact()
        write_artifact(out, {**meta, "kind": "answer_checker", "name": name, "report": report}, arrays)
    return report


def _linear_fallback(rows: "AnswerRows", hashed: Any, dense: np.ndarray, spec: FeatureSpec, alpha: float,
                     seed: int) -> tuple[Any, np.ndarray]:
    """The scorer of prompts that are not multiple choice: the earlier linear checker's recipe
    (its calibration choice: gain head -> logistic, C = 1, the cheap model's rows), so plain
    answers to open questions are scored as before. (stack, logits of every row)."""
    head, label = _checker_target(rows, "gain")
    fitter = StackFitter(spec=spec, alpha=alpha, seed=seed).fit_heads(
        hashed, dense, rows.split == "train", {"gain": HeadTarget(head, np.ones(len(label), dtype=bool))})
    fitter.fit_output(label, rows.split == "train", None, 1.0)
    return fitter.stack_, fitter.output_logits()


def _tree_grid(pairs: list[PairSet], rows: "AnswerRows", x: np.ndarray, fit_rows: np.ndarray, scores: Any,
               targets: Sequence[str], tree_grid: Sequence[tuple[int, int, float]],
               seed: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Fit trees for each (target, size) on ``fit_rows``; ``scores(raw)`` turns the trees' raw
    output into the checker's scores. Returns the grid (calibration APGR, objective) and models."""
    grid, models = [], []
    for target in targets:
        for depth, trees, rate in tree_grid:
            gbm = _fit_trees(x, _checker_target(rows, target)[1], fit_rows, depth, trees, rate, seed)
            cal = _checker_apgr(pairs, rows, scores(gbm.decision_function(x)), "calibration")
            grid.append({"target": target, "max_depth": depth, "n_estimators": trees, "learning_rate": rate,
                         "calibration_apgr": cal, "objective": _objective(pairs, cal)})
            models.append(gbm)
    return grid, models


def _text_heads(rows: "AnswerRows") -> dict[str, Any]:
    every = np.ones(len(rows.score), dtype=bool)
    return {"gain": HeadTarget(rows.q_strong - rows.score, every),
            "inadequate": HeadTarget(1.0 - rows.score, every)}


def _fit_trees(x: np.ndarray, label: np.ndarray, rows: np.ndarray, depth: int, trees: int, rate: float,
               seed: int) -> Any:
    return GradientBoostingClassifier(n_estimators=trees, max_depth=depth, learning_rate=rate, subsample=0.8,
                                      random_state=seed).fit(x[rows], label[rows])


def _with_rules(logits: np.ndarray, failed: np.ndarray) -> np.ndarray:
    return np.where(failed, np.inf, logits)


def _export_tree_checker(fitter: Any, gbm: Any, n_inputs: int, name: str, fallback: Any = None) -> Any:
    """The numpy-only checker: ridge heads with the standardisation folded in, trees as arrays."""
    nb = fitter.spec.n_buckets
    coefs = np.vstack([fitter.ridges_[n].coef_ for n in fitter.head_names_])
    dense_coef = coefs[:, nb:] / fitter.scale_
    bias = np.array([fitter.ridges_[n].intercept_ for n in fitter.head_names_]) - dense_coef @ fitter.mean_
    heads = TextHeads(spec=fitter.spec, names=tuple(fitter.head_names_), tables=np.ascontiguousarray(coefs[:, :nb]),
                      dense_coef=dense_coef, bias=bias)
    return TreeAnswerChecker(heads, from_sklearn(gbm, n_inputs), name=name, fallback=fallback)


@dataclass
class AnswerRows:
    """(prompt, answer) training rows of the answer checker; ``cheap`` marks the cheap model's."""

    prompts: list[str]
    answers: list[str]
    score: np.ndarray
    ds: np.ndarray
    split: np.ndarray
    cheap: np.ndarray
    q_strong: np.ndarray


def answer_rows(pairs: list[PairSet], other_models: bool) -> AnswerRows:
    """The cheap model's answers (and with ``other_models`` every other model's) where the data
    set has a responses table; each row scored by that model's score."""
    cols: dict[str, list[Any]] = {k: [] for k in ("prompts", "answers", "score", "ds", "split",
                                                  "cheap", "q_strong")}
    for i, ps in enumerate(pairs):
        path = ps.folder / "responses.parquet"
        if not path.exists():
            continue
        models = sorted(set(pq.read_table(path, columns=["model"]).column("model").to_pylist()))
        models = [m for m in models if m in ps.data.models and (other_models or m == ps.cheap)]
        split = ps.data.split_names()
        for model in models:
            responses = load_responses(ps.folder, ps.data, model)
            scores = ps.data.score_of(model)
            for j, answer in enumerate(responses):
                if answer is None or np.isnan(scores[j]):
                    continue
                for key, val in (("prompts", ps.data.prompts[j]), ("answers", answer),
                                 ("score", scores[j]), ("ds", i), ("split", split[j]),
                                 ("cheap", model == ps.cheap), ("q_strong", ps.q_strong[j])):
                    cols[key].append(val)
    if not cols["prompts"]:
        raise ValueError("no responses.parquet with the cheap model's answers in the data folders")
    return AnswerRows(cols["prompts"], cols["answers"], *(np.array(cols[k]) for k in
                      ("score", "ds", "split", "cheap", "q_strong")))


def _checker_apgr(pairs: list[PairSet], rows: AnswerRows, scores: np.ndarray, name: str) -> dict[str, float]:
    """Per data set: APGR of escalating the cheap answers in the order of the checker's score."""
    out = {}
    for i, ps in enumerate(pairs):
        sel = (rows.ds == i) & rows.cheap & (rows.split == name)
        if sel.any():
            out[ps.folder.name] = apgr(scores[sel], rows.score[sel], rows.q_strong[sel])
    return out


def train_linear_checker(data_dirs: Sequence[str | Path], cheap: str | None = None,
                         strong: str | None = None, out: str | Path | None = None, seed: int = 0,
                         *, spec: FeatureSpec = CHECKER_SPEC, alpha: float = 10.0,
                         Cs: Sequence[float] = (0.1, 1.0), other_models: Sequence[bool] = (False,),
                         targets: Sequence[str] = ("inadequate", "gain"),
                         name: str = "default", features: RowMap = LOCAL) -> dict[str, Any]:
    """Train the linear answer checker (the previous shipped model) on the train splits; write it.

    Target ``inadequate``: the answer's score < 0.5; target ``gain``: the strong model's score
    beats the answer's (what escalating it would recover). Features: the answer's hashed n-grams and
    structure, the prompt's structure, the rule signals. Chosen on calibration: ``C`` and whether
    other models' answers join the training rows, by the APGR of escalating the cheap model's
    calibration answers in checker order (0.5 x first data set + 0.5 x mean).
    """
    t0 = time.perf_counter()
    pairs = load_pairs(data_dirs, cheap, strong)
    grid, fitted = [], {}
    for others in other_models:
        rows = answer_rows(pairs, others)
        dense = np.hstack([features(struct_matrix, rows.answers, spec=spec),
                           features(extra_columns, rows.prompts, rows.answers)])
        hashed = features(sparse_matrix, rows.answers, spec=spec)
        for target in targets:
            fitter = _checker_grid(pairs, rows, hashed, dense, target, others, Cs, grid,
                                   StackFitter(spec=spec, alpha=alpha, seed=seed))
            fitted[(others, target)] = (fitter, rows)
    best = max(grid, key=lambda g: g["objective"])
    fitter, rows = fitted[(best["other_models"], best["target"])]
    fitter.fit_output(_checker_target(rows, best["target"])[1], rows.split == "train", None, best["C"])
    scores = _checker_scores(LinearAnswerChecker(fitter.stack_), rows)
    report = {
        "kind": "answer_checker", "name": name, "seed": seed, "target": best["target"],
        "data": _data_report(pairs), "alpha": alpha, "rules": "empty / refusal / no extractable choice -> 1.0",
        "chosen": {"C": best["C"], "other_models": best["other_models"], "target": best["target"]},
        "features": spec.to_json(), "grid": grid,
        "calibration_apgr": _checker_apgr(pairs, rows, scores, "calibration"),
        "test_apgr": _checker_apgr(pairs, rows, scores, "test"),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        meta, arrays = fitter.stack_.to_artifact()
        write_artifact(out, {**meta, "kind": "answer_checker", "name": name, "report": report}, arrays)
    return report


def _checker_grid(pairs: list[PairSet], rows: AnswerRows, hashed: Any, dense: np.ndarray, target: str,
                  others: bool, Cs: Sequence[float], grid: list[dict[str, Any]], fitter: Any) -> Any:
    """Fit the checker's head for ``target``, then its output layer for each C (appended to grid)."""
    train = rows.split == "train"
    head, label = _checker_target(rows, target)
    fitter.fit_heads(hashed, dense, train, {target: HeadTarget(head, np.ones(len(label), bool))})
    for C in Cs:
        fitter.fit_output(label, train, None, C)
        cal = _checker_apgr(pairs, rows, _checker_scores(LinearAnswerChecker(fitter.stack_), rows),
                            "calibration")
        grid.append({"C": C, "other_models": others, "target": target, "rows": len(label),
                     "calibration_apgr": cal, "objective": _objective(pairs, cal)})
    return fitter


def _checker_target(rows: AnswerRows, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(ridge head target, 0/1 output label) of the answer rows."""
    if target == "inadequate":
        return 1.0 - rows.score, (rows.score < 0.5).astype(int)
    if target == "gain":
        return rows.q_strong - rows.score, (rows.q_strong > rows.score).astype(int)
    raise ValueError(f"unknown checker target {target!r}")


def _checker_scores(checker: Any, rows: AnswerRows) -> np.ndarray:
    return checker.score(rows.prompts, rows.answers)


