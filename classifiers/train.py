"""Train the prompt classifier and the answer checker; write pickle-free artifacts.

    python -m classifiers.train classifier --data ../shared/data/mmlu_pro ... --out PATH
    python -m classifiers.train checker    --data ../shared/data/mmlu_pro ... --out PATH

(``cascade train`` calls :func:`train_classifier` / :func:`train_answer_checker`.) Rows are split
by prompt with :mod:`classifiers.splits`: heads and output layers are fitted on ``train``, the
few hyper-parameters are chosen on ``calibration``, and ``test`` is only reported.

Pair: where a data set has both ``cheap`` and ``strong`` models, that pair is used; otherwise the
data set's natural pair from its meta.json (the report says which).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from classifiers.artifact import write_artifact
from classifiers.data import RoutingData, load_dataset, load_responses
from classifiers.features import FeatureSpec, sparse_matrix, struct_matrix
from classifiers.metrics import apgr
from classifiers.rules import rule_failure

# Word 1/2-grams only: adding character 3/4/5-grams moved calibration APGR by < 0.003 on MMLU-Pro
# and cost 3x the scoring time.
CLASSIFIER_SPEC = FeatureSpec(bits=16, char_ngrams=(), word_ngrams=(1, 2), head=2048, tail=1024)
CHECKER_SPEC = FeatureSpec(bits=16, char_ngrams=(), word_ngrams=(1, 2), head=512, tail=1536)


@dataclass
class PairSet:
    """One data set restricted to the rows where both models of its pair have a score."""

    folder: Path
    data: RoutingData
    cheap: str
    strong: str

    @property
    def q_cheap(self) -> np.ndarray:
        return self.data.score_of(self.cheap)

    @property
    def q_strong(self) -> np.ndarray:
        return self.data.score_of(self.strong)


def load_pairs(data_dirs: Sequence[str | Path], cheap: str | None, strong: str | None) -> list[PairSet]:
    """Each folder with the named pair where it has both models, else its natural pair."""
    out = []
    for folder in map(Path, data_dirs):
        data = load_dataset(folder)
        c, s = (cheap, strong) if cheap in data.models and strong in data.models else (data.cheap, data.strong)
        out.append(PairSet(folder, data.with_pair(c, s), c, s))
    return out


def _cheap_responses(ps: PairSet) -> list[str | None] | None:
    try:
        return load_responses(ps.folder, ps.data, ps.cheap)
    except FileNotFoundError:
        return None


def _apgr_by_split(pairs: list[PairSet], logits: np.ndarray, ds: np.ndarray, split: np.ndarray,
                   name: str) -> dict[str, float]:
    out = {}
    for i, ps in enumerate(pairs):
        rows = (ds == i) & (split == name)
        sub = split[ds == i] == name
        out[ps.folder.name] = apgr(logits[rows], ps.q_cheap[sub], ps.q_strong[sub])
    return out


def train_classifier(data_dirs: Sequence[str | Path], cheap: str | None = None,
                     strong: str | None = None, out: str | Path | None = None, seed: int = 0,
                     *, spec: FeatureSpec = CLASSIFIER_SPEC, alpha: float = 10.0,
                     Cs: Sequence[float] = (0.1, 1.0), weightings: Sequence[str] = ("none",),
                     gated: bool = True, name: str = "default") -> dict[str, Any]:
    """Train the prompt classifier on the train splits of ``data_dirs``; write it to ``out``.

    Label: strong score > cheap score. Ridge heads: quality gain (all rows); with ``gated``, one
    gain head per data set whose target is that set's centred gain on its rows and 0 on the
    others (so it learns to speak only on prompts that look like its data set: a linear stand-in
    for a gated mixture); the cheap model's log answer length (where known); the cheap answer's
    rule failure (where responses exist).
    Chosen on calibration: ``C`` and the data-set weighting, by 0.5 x APGR on the first data
    set + 0.5 x mean APGR. Returns the report (also stored in the artifact's metadata).
    """
    from classifiers.fit import StackFitter

    t0 = time.perf_counter()
    pairs = load_pairs(data_dirs, cheap, strong)
    texts = [p for ps in pairs for p in ps.data.prompts]
    ds = np.concatenate([np.full(len(ps.data), i) for i, ps in enumerate(pairs)])
    split = np.concatenate([ps.data.split_names() for ps in pairs])
    qc = np.concatenate([ps.q_cheap for ps in pairs])
    qs = np.concatenate([ps.q_strong for ps in pairs])
    heads = _classifier_heads(pairs, ds, qs - qc, gated)
    train = split == "train"
    fitter = StackFitter(spec=spec, alpha=alpha, seed=seed).fit_heads(
        sparse_matrix(texts, spec), struct_matrix(texts, spec), train, heads)
    label = (qs > qc).astype(int)
    grid = []
    for weighting in weightings:
        for C in Cs:
            fitter.fit_output(label, train, _weights(ds, train, weighting), C)
            cal = _apgr_by_split(pairs, fitter.output_logits(), ds, split, "calibration")
            grid.append({"C": C, "weighting": weighting, "calibration_apgr": cal,
                         "objective": _objective(pairs, cal)})
    best = max(grid, key=lambda g: g["objective"])
    fitter.fit_output(label, train, _weights(ds, train, best["weighting"]), best["C"])
    logits = fitter.output_logits()
    report = {
        "kind": "classifier", "name": name, "seed": seed, "label": "strong score > cheap score",
        "data": _data_report(pairs), "heads": list(heads), "alpha": alpha,
        "features": spec.to_json(),
        "chosen": {"C": best["C"], "weighting": best["weighting"]}, "grid": grid,
        "calibration_apgr": _apgr_by_split(pairs, logits, ds, split, "calibration"),
        "test_apgr": _apgr_by_split(pairs, logits, ds, split, "test"),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        meta, arrays = fitter.stack_.to_artifact()
        write_artifact(out, {**meta, "kind": "classifier", "name": name, "report": report}, arrays)
    return report


def _objective(pairs: list[PairSet], cal: dict[str, float]) -> float:
    """Selection objective: 0.5 x calibration APGR of the first data set + 0.5 x the mean."""
    first = cal.get(pairs[0].folder.name, float(np.mean(list(cal.values()))))
    return 0.5 * first + 0.5 * float(np.mean(list(cal.values())))


def _classifier_heads(pairs: list[PairSet], ds: np.ndarray, gain: np.ndarray, gated: bool) -> dict[str, Any]:
    from classifiers.fit import HeadTarget
    heads = {"gain": HeadTarget(gain, np.ones(len(ds), dtype=bool))}
    if gated and len(pairs) > 1:
        heads.update(_gated_gain_targets(pairs, ds, gain))
    heads.update({"cheap_log_tokens": _token_target(pairs), "cheap_rule_failure": _failure_target(pairs)})
    return {k: v for k, v in heads.items() if v.mask.any()}


def _gated_gain_targets(pairs: list[PairSet], ds: np.ndarray, gain: np.ndarray) -> dict[str, Any]:
    from classifiers.fit import HeadTarget
    out = {}
    for i, ps in enumerate(pairs):
        own = ds == i
        target = np.where(own, gain - gain[own].mean(), 0.0)
        out[f"gain@{ps.folder.name}"] = HeadTarget(target, np.ones(len(ds), dtype=bool))
    return out


def _weights(ds: np.ndarray, train: np.ndarray, weighting: str) -> np.ndarray | None:
    if weighting == "none":
        return None
    counts = np.bincount(ds[train], minlength=ds.max() + 1).astype(float)
    return (train.sum() / (len(counts) * np.maximum(counts, 1)))[ds]


def _token_target(pairs: list[PairSet]) -> "Any":
    from classifiers.fit import HeadTarget
    vals = np.concatenate([ps.data.completion_tokens[:, ps.data.col(ps.cheap)] for ps in pairs])
    known = np.isfinite(vals)
    return HeadTarget(np.where(known, np.log1p(np.where(known, vals, 0.0)), 0.0), known)


def _failure_target(pairs: list[PairSet]) -> "Any":
    from classifiers.fit import HeadTarget
    vals, mask = [], []
    for ps in pairs:
        responses = _cheap_responses(ps) or [None] * len(ps.data)
        for prompt, answer in zip(ps.data.prompts, responses):
            mask.append(answer is not None)
            vals.append(0.0 if answer is None else float(rule_failure(prompt, answer) is not None))
    return HeadTarget(np.array(vals), np.array(mask, dtype=bool))


def _data_report(pairs: list[PairSet]) -> list[dict[str, Any]]:
    return [{"folder": ps.folder.name, "cheap": ps.cheap, "strong": ps.strong,
             "rows": {s: int(np.sum(ps.data.split_names() == s)) for s in ("train", "calibration", "test")}}
            for ps in pairs]


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
    import pyarrow.parquet as pq

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


def train_answer_checker(data_dirs: Sequence[str | Path], cheap: str | None = None,
                         strong: str | None = None, out: str | Path | None = None, seed: int = 0,
                         *, spec: FeatureSpec = CHECKER_SPEC, alpha: float = 10.0,
                         Cs: Sequence[float] = (0.1, 1.0), other_models: Sequence[bool] = (False,),
                         targets: Sequence[str] = ("inadequate", "gain"),
                         name: str = "default") -> dict[str, Any]:
    """Train the answer checker on the train splits of the folders with responses; write it.

    Target ``inadequate``: the answer's score < 0.5; target ``gain``: the strong model's score
    beats the answer's (what escalating it would recover). Features: the answer's hashed n-grams and
    structure, the prompt's structure, the rule signals. Chosen on calibration: ``C`` and whether
    other models' answers join the training rows, by the APGR of escalating the cheap model's
    calibration answers in checker order (0.5 x first data set + 0.5 x mean).
    """
    from classifiers.checker import LinearAnswerChecker, extra_columns
    from classifiers.fit import StackFitter

    t0 = time.perf_counter()
    pairs = load_pairs(data_dirs, cheap, strong)
    grid, fitted = [], {}
    for others in other_models:
        rows = answer_rows(pairs, others)
        dense = np.hstack([struct_matrix(rows.answers, spec), extra_columns(rows.prompts, rows.answers)])
        hashed = sparse_matrix(rows.answers, spec)
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
    from classifiers.checker import LinearAnswerChecker
    from classifiers.fit import HeadTarget

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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m classifiers.train {classifier,checker} --data DIR... --out PATH``."""
    parser = argparse.ArgumentParser(prog="python -m classifiers.train", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("classifier", "checker"))
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--cheap")
    parser.add_argument("--strong")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="default", help="name stored in the artifact")
    args = parser.parse_args(argv)
    train = train_classifier if args.what == "classifier" else train_answer_checker
    report = train(args.data, args.cheap, args.strong, args.out, args.seed, name=args.name)
    print(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
