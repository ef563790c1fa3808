"""Train the prompt classifier and the answer checker; write pickle-free artifacts.

    python -m classifiers.training.train classifier --data ../shared/data/mmlu_pro ... --out PATH
    python -m classifiers.training.train checker    --data ../shared/data/mmlu_pro ... --out PATH

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
from classifiers.features import STRUCT_NAMES, FeatureSpec, sparse_matrix, struct_matrix
from classifiers.gated import GatedLinearClassifier, OptionGate
from classifiers.metrics import apgr
from classifiers.rules import rule_failure
from classifiers.training.data import RoutingData, load_dataset, load_responses
from classifiers.training.fit import HeadTarget, StackFitter
from classifiers.training.rowmap import LOCAL, RowMap

# Word 1/2-grams only: adding character 3/4/5-grams moved calibration APGR by < 0.003 on MMLU-Pro
# and cost 3x the scoring time.
CLASSIFIER_SPEC = FeatureSpec(bits=16, char_ngrams=(), word_ngrams=(1, 2), head=2048, tail=1024)
CHECKER_SPEC = FeatureSpec(bits=16, char_ngrams=(), word_ngrams=(1, 2), head=512, tail=1536)
#: the ridge head groups a prompt classifier can be given (see :func:`_classifier_heads`)
HEAD_GROUPS = ("gated", "tokens", "failure", "difficulty", "pair_scores", "task")
#: the shipped choice, on calibration (difficulty and pair_scores lowered the objective)
DEFAULT_HEADS = ("gated", "tokens", "failure", "task")
#: prompts with this many lettered options (long multiple-choice exams) get their own expert
OPTION_GATE = (6, 11)
#: the gate expert is kept only when it raises the calibration objective by more than this
GATE_MARGIN = 0.002


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
                     gated: bool = True, heads: Sequence[str] = DEFAULT_HEADS,
                     option_gate: tuple[int, int] | None = OPTION_GATE,
                     name: str = "default", features: RowMap = LOCAL) -> dict[str, Any]:
    """Train the prompt classifier on the train splits of ``data_dirs``; write it to ``out``.

    Label: strong score > cheap score. Ridge heads: quality gain (all rows) and the ``heads``
    groups of :func:`_classifier_heads`; with ``gated``, one gain head per data set whose target
    is that set's centred gain on its rows and 0 on the others (a linear stand-in for a gated
    mixture). With ``option_gate=(low, high)``, a second expert is fitted on the training prompts
    with ``low..high`` lettered options (long multiple-choice exams) and used for those prompts
    (:class:`classifiers.gated.GatedLinearClassifier`), if that raises the calibration objective.
    Chosen on calibration: ``C``, the data-set weighting and the gate, by 0.5 x APGR on the first
    data set + 0.5 x mean APGR. ``features``: where the prompts' features are extracted (the fit is
    here). Returns the report (also stored in the artifact's metadata).
    """
    t0 = time.perf_counter()
    pairs = load_pairs(data_dirs, cheap, strong)
    texts = [p for ps in pairs for p in ps.data.prompts]
    ds = np.concatenate([np.full(len(ps.data), i) for i, ps in enumerate(pairs)])
    split = np.concatenate([ps.data.split_names() for ps in pairs])
    qc = np.concatenate([ps.q_cheap for ps in pairs])
    qs = np.concatenate([ps.q_strong for ps in pairs])
    targets = _classifier_heads(pairs, ds, qs - qc, gated, heads)
    train, label = split == "train", (qs > qc).astype(int)
    hashed, dense = features(sparse_matrix, texts, spec=spec), features(struct_matrix, texts, spec=spec)
    fitter = StackFitter(spec=spec, alpha=alpha, seed=seed).fit_heads(hashed, dense, train, targets)
    rows = _Rows(pairs, ds, split, train, label, hashed, dense)
    grid = _output_grid(fitter, rows, Cs, weightings)
    best = max(grid, key=lambda g: g["objective"])
    fitter.fit_output(label, train, _weights(ds, train, best["weighting"]), best["C"])
    logits = fitter.output_logits()
    expert = None if option_gate is None else _gate_expert(rows, targets, option_gate, spec, alpha, seed, Cs,
                                                           logits, best["objective"], grid)
    if expert is not None:
        logits = np.where(expert[1], expert[0].output_logits(), logits)
    report = {
        "kind": "classifier", "name": name, "seed": seed, "label": "strong score > cheap score",
        "data": _data_report(pairs), "heads": list(targets), "alpha": alpha, "features": spec.to_json(),
        "chosen": {"C": best["C"], "weighting": best["weighting"],
                   "option_gate": None if expert is None else list(option_gate)}, "grid": grid,
        "calibration_apgr": _apgr_by_split(pairs, logits, ds, split, "calibration"),
        "test_apgr": _apgr_by_split(pairs, logits, ds, split, "test"),
        "train_seconds": round(time.perf_counter() - t0, 1),
    }
    if out is not None:
        meta, arrays = _classifier_artifact(fitter, expert, option_gate, name)
        write_artifact(out, {**meta, "kind": "classifier", "name": name, "report": report}, arrays)
    return report


@dataclass
class _Rows:
    """The classifier's training rows (all data sets), shared by the main fit and the gate expert."""

    pairs: list[PairSet]
    ds: np.ndarray
    split: np.ndarray
    train: np.ndarray
    label: np.ndarray
    hashed: Any
    dense: np.ndarray


def _output_grid(fitter: Any, rows: "_Rows", Cs: Sequence[float], weightings: Sequence[str]) -> list[dict[str, Any]]:
    """Fit the output layer for each (weighting, C); their calibration APGR and objective."""
    grid = []
    for weighting in weightings:
        for C in Cs:
            fitter.fit_output(rows.label, rows.train, _weights(rows.ds, rows.train, weighting), C)
            cal = _apgr_by_split(rows.pairs, fitter.output_logits(), rows.ds, rows.split, "calibration")
            grid.append({"C": C, "weighting": weighting, "calibration_apgr": cal,
                         "objective": _objective(rows.pairs, cal)})
    return grid


def _gate_expert(rows: _Rows, targets: dict[str, Any], option_gate: tuple[int, int], spec: FeatureSpec,
                 alpha: float, seed: int, Cs: Sequence[float], main_logits: np.ndarray, main_objective: float,
                 grid: list[dict[str, Any]]) -> tuple[Any, np.ndarray] | None:
    """Fit the expert for prompts inside the option gate; (fitter, in-gate mask) if it raises
    the calibration objective of the mixture by more than :data:`GATE_MARGIN` (each C tried is
    appended to ``grid``), else None."""
    inside = OptionGate(*option_gate).experts(rows.dense[:, STRUCT_NAMES.index("options")]).astype(bool)
    fit_rows = rows.train & inside
    own = {k: HeadTarget(t.values, t.mask & inside) for k, t in targets.items()
           if np.unique(t.values[fit_rows & t.mask]).size > 1}  # constant inside the gate: no head
    if fit_rows.sum() < 200 or not own:
        return None
    fitter = StackFitter(spec=spec, alpha=alpha, seed=seed).fit_heads(rows.hashed, rows.dense, fit_rows, own)
    tried = []
    for C in Cs:
        fitter.fit_output(rows.label, fit_rows, None, C)
        mixed = np.where(inside, fitter.output_logits(), main_logits)
        cal = _apgr_by_split(rows.pairs, mixed, rows.ds, rows.split, "calibration")
        tried.append({"C": C, "option_gate": list(option_gate), "calibration_apgr": cal,
                      "objective": _objective(rows.pairs, cal)})
    grid.extend(tried)
    best = max(tried, key=lambda g: g["objective"])
    if best["objective"] <= main_objective + GATE_MARGIN:
        return None
    fitter.fit_output(rows.label, fit_rows, None, best["C"])
    return fitter, inside


def _classifier_artifact(fitter: Any, expert: tuple[Any, np.ndarray] | None, option_gate: tuple[int, int] | None,
                         name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if expert is None:
        return fitter.stack_.to_artifact()
    gated = GatedLinearClassifier([fitter.stack_, expert[0].stack_], OptionGate(*option_gate), name)
    return gated.to_artifact()


def _objective(pairs: list[PairSet], cal: dict[str, float]) -> float:
    """Selection objective: 0.5 x calibration APGR of the first data set + 0.5 x the mean."""
    first = cal.get(pairs[0].folder.name, float(np.mean(list(cal.values()))))
    return 0.5 * first + 0.5 * float(np.mean(list(cal.values())))


def _classifier_heads(pairs: list[PairSet], ds: np.ndarray, gain: np.ndarray, gated: bool,
                      groups: Sequence[str] = HEAD_GROUPS) -> dict[str, Any]:
    """The gain head plus the named ``groups`` of training-only targets (the prompt is the
    only input at inference): per-data-set gated gains, the cheap answer's log length and rule
    failure, the difficulty (mean score of every model outside the pair), each model of the
    pair's own score, and the training mean gain of the prompt's task."""
    heads = {"gain": HeadTarget(gain, np.ones(len(ds), dtype=bool))}
    if "gated" in groups and gated and len(pairs) > 1:
        heads.update(_gated_gain_targets(pairs, ds, gain))
    if "tokens" in groups:
        heads["cheap_log_tokens"] = _token_target(pairs)
    if "failure" in groups:
        heads["cheap_rule_failure"] = _failure_target(pairs)
    if "difficulty" in groups:
        heads["difficulty"] = difficulty_target(pairs)
    if "pair_scores" in groups:
        every = np.ones(len(ds), dtype=bool)
        heads["cheap_score"] = HeadTarget(np.concatenate([ps.q_cheap for ps in pairs]), every)
        heads["strong_score"] = HeadTarget(np.concatenate([ps.q_strong for ps in pairs]), every)
    if "task" in groups:
        heads["task_gain"] = _task_gain_target(pairs, gain)
    return {k: v for k, v in heads.items() if v.mask.any()}


def difficulty_target(pairs: list[PairSet]) -> HeadTarget:
    """Per prompt: the mean score of every model outside its pair, centred per data set (known
    where at least one such model has a score; a far less noisy target than the pair's gain)."""
    vals, known = [], []
    for ps in pairs:
        others = [j for j, m in enumerate(ps.data.models) if m not in (ps.cheap, ps.strong)]
        scores = ps.data.scores[:, others]
        has = np.isfinite(scores).any(axis=1) if others else np.zeros(len(ps.data), dtype=bool)
        mean = np.zeros(len(ps.data))
        if has.any():
            mean[has] = np.nanmean(scores[has], axis=1)
            mean[has] -= mean[has].mean()
        vals.append(mean)
        known.append(has)
    return HeadTarget(np.concatenate(vals), np.concatenate(known))


def _task_gain_target(pairs: list[PairSet], gain: np.ndarray) -> HeadTarget:
    """Per prompt: the mean gain of its task over the training rows (known where the task has
    training rows): a topic prior, e.g. MMLU-Pro law vs biology."""
    tasks = np.concatenate([ps.data.tasks.astype(str) for ps in pairs])
    train = np.concatenate([ps.data.split_names() for ps in pairs]) == "train"
    names, inverse = np.unique(tasks, return_inverse=True)
    sums = np.bincount(inverse[train], weights=gain[train], minlength=names.size)
    counts = np.bincount(inverse[train], minlength=names.size)
    known = counts[inverse] > 0
    return HeadTarget(np.where(known, sums[inverse] / np.maximum(counts[inverse], 1), 0.0), known)


def _gated_gain_targets(pairs: list[PairSet], ds: np.ndarray, gain: np.ndarray) -> dict[str, Any]:
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


def _token_target(pairs: list[PairSet]) -> HeadTarget:
    vals = np.concatenate([ps.data.completion_tokens[:, ps.data.col(ps.cheap)] for ps in pairs])
    known = np.isfinite(vals)
    return HeadTarget(np.where(known, np.log1p(np.where(known, vals, 0.0)), 0.0), known)


def _failure_target(pairs: list[PairSet]) -> HeadTarget:
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


def train_answer_checker(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Train the answer checker: :func:`classifiers.training.train_checker.train_answer_checker`."""
    from classifiers.training.train_checker import train_answer_checker as train
    return train(*args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m classifiers.training.train {classifier,checker} --data DIR... --out PATH``."""
    parser = argparse.ArgumentParser(prog="python -m classifiers.training.train", description=__doc__.split("\n")[0])
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
