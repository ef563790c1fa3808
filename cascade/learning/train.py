"""``cascade train --traces T --out DIR --policy P [--data DIR...]``: fit the adapted classifier and
answer checker (:mod:`classifiers.adapted`, warm-started from P's own scorers) on the labelled requests
of T (optionally with outcome folders' train-split rows beside them), write ``DIR/classifier.{json,npz}``,
``DIR/checker.{json,npz}`` and ``DIR/policy.yaml`` (P extended to use them), with the thresholds
calibrated by :mod:`cascade.calibrate`'s own functions on a share of the labelled requests the scorers
were not fitted on (:data:`CALIBRATION_SHARE`, chosen by a hash of the prompt: reproducible)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.loader import load_policy

from cascade.learning.labels import judged_answer, read_labelled, write_lines
from cascade.learning.policy_file import write_candidate
from cascade.learning.thresholds import smoothed
from cascade.replay.checks import swept_checker

DATA_WEIGHT = 1.0        # weight of an outcome-data row beside a labelled trace row
CALIBRATION_SHARE = 0.3  # labelled requests kept apart (by a hash of the prompt) to calibrate the thresholds on


def split_rows(rows: list[dict[str, Any]], share: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows to fit on, rows to calibrate on): thresholds are never chosen on the rows the scorers learned."""
    import hashlib

    def calibrates(row: dict[str, Any]) -> bool:
        digest = hashlib.blake2b(str(row.get("prompt", row.get("request_id"))).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2 ** 64 < share
    held = [r for r in rows if calibrates(r)]
    fit = [r for r in rows if not calibrates(r)]
    if not held or not fit:
        raise ConfigError(f"too few labelled requests ({len(rows)}) to keep a calibration share apart")
    return fit, held


def in_trace_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Request lines in an order that does not depend on when each request finished: concurrent requests are
    written as they complete, so the same traffic gives its lines in another order run after run, and a fit's
    folds follow the order. By request id (drawn from the Router's seed when it has one), then time."""
    return sorted(rows, key=lambda r: (str(r.get("request_id")), str(r.get("ts"))))


def labelled_examples(rows: list[dict[str, Any]]) -> tuple[list[str], list[str | None], np.ndarray]:
    """(prompts, returned answers or None, 1 when the returned cheap answer was inadequate)."""
    prompts, answers, bad = [], [], []
    for row in rows:
        if not isinstance(row.get("prompt"), str):
            raise ConfigError("the traces hold no prompt text: write them with trace_text=True to train on them")
        prompts.append(row["prompt"])
        answers.append(judged_answer(row))
        bad.append(float(row["label"]["quality"]) < 0.5)
    return prompts, answers, np.asarray(bad, dtype=int)


def outcome_examples(data_dirs: Sequence[str | Path]) -> tuple[list[str], np.ndarray]:
    """Train-split prompts of outcome folders, labelled 1 where the strong model scored above the cheap."""
    from classifiers.training.train import load_pairs
    prompts: list[str] = []
    labels: list[np.ndarray] = []
    for ps in load_pairs(data_dirs, None, None):
        train = ps.data.splits == "train" if ps.data.splits is not None else np.ones(len(ps.data), bool)
        prompts += [p for p, keep in zip(ps.data.prompts, train) if keep]
        labels.append((ps.q_strong > ps.q_cheap)[train].astype(int))
    return prompts, np.concatenate(labels) if labels else np.zeros(0, int)


def train_from_traces(traces: str | Path, out: str | Path, policy_arg: str, data_dirs: Sequence[str | Path] = (),
                      target: str = "quality=0.95", seed: int = 0,
                      calibration_share: float = CALIBRATION_SHARE) -> dict[str, Any]:
    out = Path(out).expanduser().resolve()
    policy = load_policy(policy_arg)
    every = in_trace_order(read_labelled(traces))         # the trace file, read once
    labelled = [r for r in every if "label" in r]
    if not labelled:
        raise ConfigError(f"{traces}: no labelled request (shadow answers with a label, or feedback)")
    rows, held = split_rows(labelled, calibration_share)
    prompts, answers, bad = labelled_examples(rows)
    classifier, clf_report = _classifier(policy, prompts, bad, data_dirs, out, seed)
    checker, chk_report = _checker(policy, prompts, answers, bad, out, seed)
    candidate = write_candidate(policy_arg, policy, out / "policy.yaml", classifier, checker)
    # nothing fitted: every labelled request may calibrate; else only those the scorers never saw
    calibrate_on = held if classifier or checker else labelled
    paired = [r for r in calibrate_on if both_rungs(r)]
    if not paired:
        raise ConfigError("no labelled request kept for calibration has a shadow answer: shadow more traffic")
    calibration_file = write_lines(paired, out / "calibration-traces.jsonl")
    checker_t2, t2_report = _whole_trace_t2(every, candidate, calibrate_on)
    calibration = calibrate_on_traces(out / "policy.yaml", candidate, calibration_file, target, checker_t2)
    calibration["checker_threshold_from_trace"] = {"threshold": checker_t2, **t2_report}
    return {"policy_file": str(out / "policy.yaml"), "classifier": str(classifier) if classifier else None,
            "checker": str(checker) if checker else None, "labelled_requests": len(labelled),
            "fitted_on": len(rows), "calibrated_on": len(paired),
            "inadequate_cheap_answers": int(bad.sum()), "outcome_rows": clf_report.get("outcome_rows", 0),
            "classifier_fit": clf_report, "checker_fit": chk_report, **calibration}


def _classifier(policy: Any, prompts: list[str], bad: np.ndarray, data_dirs: Sequence[str | Path], out: Path,
                seed: int) -> tuple[Path | None, dict[str, Any]]:
    """The adapted classifier's artifact, or None (and no artifact) when it does not beat the base in
    cross-validation: the candidate then keeps the policy's classifier."""
    from classifiers.artifact import write_artifact
    from classifiers.training.adapt import fit_adapted_classifier
    extra_prompts, extra_labels = outcome_examples(data_dirs) if data_dirs else ([], np.zeros(0, int))
    weights = np.concatenate([np.ones(len(prompts)), np.full(len(extra_prompts), DATA_WEIGHT)])
    try:
        clf, report = fit_adapted_classifier(prompts + extra_prompts, np.concatenate([bad, extra_labels]),
                                             base=_base_ref(policy.routing.classifier), weights=weights, seed=seed)
    except ConfigError as exc:                       # too few labels to fit: the policy's classifier stays
        return None, {"skipped": str(exc), "outcome_rows": len(extra_prompts)}
    report["outcome_rows"] = len(extra_prompts)
    return _kept(clf, report, out / "classifier", write_artifact)


def _kept(model: Any, report: dict[str, Any], stem: Path, write: Any) -> tuple[Path | None, dict[str, Any]]:
    from classifiers.artifact import artifact_paths
    for path in artifact_paths(stem):
        path.unlink(missing_ok=True)                 # no stale artifact of an earlier run beside the candidate
    if not report.get("beats_base"):
        return None, {**report, "kept": "base (the fit does not beat it in cross-validation)"}
    return write(stem, *model.to_artifact()), {**report, "kept": "adapted"}


def both_rungs(row: dict[str, Any]) -> bool:
    """Whether a labelled request has both rungs' outcomes: a shadow answer, or the walk's own cheap
    answer judged by an exploring shadow."""
    return any(a.get("shadow") for a in row.get("attempts", ())) or bool((row.get("label") or {}).get("explores"))


def _checker(policy: Any, prompts: list[str], answers: list[str | None], bad: np.ndarray, out: Path,
             seed: int) -> tuple[Path | None, dict[str, Any]]:
    from classifiers.artifact import write_artifact
    from classifiers.training.adapt import fit_adapted_checker
    spec = swept_checker(policy)
    if spec is None:
        return None, {"skipped": "the policy has no answer_checker check"}
    have = [i for i, a in enumerate(answers) if isinstance(a, str)]
    if not have:
        return None, {"skipped": "the traces hold no answer text"}
    try:
        chk, report = fit_adapted_checker([prompts[i] for i in have], [answers[i] for i in have], bad[have],
                                          base=_base_ref(str(spec.param("artifact", "default"))), seed=seed)
    except ConfigError as exc:                       # too few labelled answers: the policy's checker stays
        return None, {"skipped": str(exc)}
    return _kept(chk, report, out / "checker", write_artifact)


def _base_ref(ref: str) -> str:
    """A scorer name as it is; an artifact path made absolute (the adapted artifact may be moved)."""
    from classifiers import ANSWER_CHECKERS, CLASSIFIERS
    if ref in CLASSIFIERS or ref in ANSWER_CHECKERS:
        return ref
    return str(Path(ref).expanduser().resolve())


def calibrate_on_traces(policy_file: Path, policy: Any, traces: Path, target: str,
                        checker_t2: float | None = None) -> dict[str, Any]:
    """Thresholds chosen on the labelled traces: the checker's (t2) where the curve the classifier's
    threshold traces at it has the highest APGR (the replay report's policy APGR; averaged over
    neighbouring thresholds, as a few labels make it jagged; ``checker_t2``: the one chosen on the
    whole trace by :mod:`cascade.learning.thresholds`), then the
    classifier's (t1) on that curve for ``target`` (:func:`cascade.calibrate.choose_point`; its best
    quality when the target is out of reach)."""
    from cascade.calibrate import choose_point, parse_target, write_thresholds
    from cascade.replay.run import run_replay
    from cascade.replay.traces import load_traces
    goal = parse_target(target)
    data = load_traces(traces, policy, {}, "all")
    sw = run_replay(policy, data=data, full_sweep=True).sweep
    t1, t2 = np.meshgrid(sw.t1, np.array([np.nan if t is None else t for t in sw.t2]))
    q_cheap, q_strong = float(data.quality[:, 0].mean()), float(data.quality[:, -1].mean())
    quality, cost, share = sw.column("quality"), sw.column("usd_per_1k"), sw.column("strong_share")
    apgr = smoothed(checker_apgr(share, quality, q_cheap, q_strong))
    row = int(np.nanargmax(apgr)) if np.isfinite(apgr).any() else None
    current = swept_t2(policy)
    if row is not None and current in sw.t2 and np.isclose(apgr[sw.t2.index(current)], apgr[row], atol=1e-9):
        row = sw.t2.index(current)                       # no better threshold on these labels: keep the policy's
    if checker_t2 is not None and checker_t2 in sw.t2:                  # chosen on the whole trace
        row = sw.t2.index(checker_t2)
    valid = np.ones_like(t1, dtype=bool) if row is None else np.arange(t1.shape[0])[:, None] == row + 0 * t1
    try:
        k = choose_point(quality, cost, share, t1, t2, valid, goal, q_strong)
    except ConfigError:                                   # out of reach on that curve: its best quality
        k = int(np.flatnonzero(valid.ravel())[np.argmax(quality.ravel()[valid.ravel()])])
    new_t1, raw_t2 = float(t1.ravel()[k]), t2.ravel()[k]
    new_t2 = None if np.isnan(raw_t2) else float(raw_t2)
    write_thresholds(policy_file, policy_file, policy, new_t1, new_t2)
    return {"target": str(goal), "thresholds": {"classifier": new_t1, "answer_checker": new_t2},
            "calibration_apgr": None if row is None else round(float(apgr[row]), 4)}


def _whole_trace_t2(every: list[dict[str, Any]], candidate: Any,
                    calibrate_on: list[dict[str, Any]]) -> tuple[float | None, dict]:
    """The checker threshold from every traced cheap answer, with the labels of ``calibrate_on`` only."""
    from cascade.learning.thresholds import checker_threshold_from_traces
    keys = {(r.get("request_id"), r.get("ts")) for r in calibrate_on}
    rows = [r for r in every if "label" not in r or (r.get("request_id"), r.get("ts")) in keys]
    return checker_threshold_from_traces(candidate, rows)


def swept_t2(policy: Any) -> float | None:
    from cascade.replay.checks import checker_threshold
    spec = swept_checker(policy)
    return None if spec is None else checker_threshold(spec)


def checker_apgr(share: np.ndarray, quality: np.ndarray, q_cheap: float, q_strong: float) -> np.ndarray:
    """Per checker threshold (sweep row), the APGR of the curve its classifier thresholds trace
    (NaN where undefined: both models equally good)."""
    from classifiers.metrics import curve_apgr
    out = np.full(share.shape[0], np.nan)
    if abs(q_strong - q_cheap) < 1e-12:
        return out
    for j in range(share.shape[0]):
        out[j] = curve_apgr(share[j], quality[j], q_cheap, q_strong)
    return out
