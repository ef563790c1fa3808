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
    from classifiers.artifact import write_artifact
    from classifiers.training.adapt import fit_adapted_classifier
    out = Path(out).expanduser().resolve()
    policy = load_policy(policy_arg)
    labelled = read_labelled(traces, only_labelled=True)
    if not labelled:
        raise ConfigError(f"{traces}: no labelled request (shadow answers with a label, or feedback)")
    rows, held = split_rows(labelled, calibration_share)
    prompts, answers, bad = labelled_examples(rows)
    extra_prompts, extra_labels = outcome_examples(data_dirs) if data_dirs else ([], np.zeros(0, int))
    weights = np.concatenate([np.ones(len(prompts)), np.full(len(extra_prompts), DATA_WEIGHT)])
    clf, clf_report = fit_adapted_classifier(prompts + extra_prompts, np.concatenate([bad, extra_labels]),
                                             base=_base_ref(policy.routing.classifier), weights=weights, seed=seed)
    classifier = write_artifact(out / "classifier", *clf.to_artifact())
    checker, chk_report = _checker(policy, prompts, answers, bad, out, seed)
    candidate = write_candidate(policy_arg, policy, out / "policy.yaml", classifier, checker)
    paired = [r for r in held if both_rungs(r)]                                   # both rungs' outcomes known
    if not paired:
        raise ConfigError("no labelled request kept for calibration has a shadow answer: shadow more traffic")
    calibration_file = write_lines(paired, out / "calibration-traces.jsonl")
    calibration = calibrate_on_traces(out / "policy.yaml", candidate, calibration_file, target)
    return {"policy_file": str(out / "policy.yaml"), "classifier": str(classifier),
            "checker": str(checker) if checker else None, "labelled_requests": len(labelled),
            "fitted_on": len(rows), "calibrated_on": len(paired),
            "inadequate_cheap_answers": int(bad.sum()), "outcome_rows": len(extra_prompts),
            "classifier_fit": clf_report, "checker_fit": chk_report, **calibration}


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
    chk, report = fit_adapted_checker([prompts[i] for i in have], [answers[i] for i in have], bad[have],
                                      base=_base_ref(str(spec.param("artifact", "default"))), seed=seed)
    return write_artifact(out / "checker", *chk.to_artifact()), report


def _base_ref(ref: str) -> str:
    """A scorer name as it is; an artifact path made absolute (the adapted artifact may be moved)."""
    from classifiers import ANSWER_CHECKERS, CLASSIFIERS
    if ref in CLASSIFIERS or ref in ANSWER_CHECKERS:
        return ref
    return str(Path(ref).expanduser().resolve())


def calibrate_on_traces(policy_file: Path, policy: Any, traces: Path, target: str) -> dict[str, Any]:
    """Both thresholds chosen jointly on the labelled traces for ``target`` (cascade.calibrate)."""
    from cascade.calibrate import choose_point, parse_target, write_thresholds
    from cascade.replay.run import run_replay
    from cascade.replay.traces import load_traces
    goal = parse_target(target)
    data = load_traces(traces, policy, {}, "all")
    run = run_replay(policy, data=data, full_sweep=True)
    sw = run.sweep
    t1, t2 = np.meshgrid(sw.t1, np.array([np.nan if t is None else t for t in sw.t2]))
    valid = np.ones_like(t1, dtype=bool)
    q_strong = float(data.quality[:, -1].mean())
    k = choose_point(sw.column("quality"), sw.column("usd_per_1k"), sw.column("strong_share"), t1, t2, valid,
                     goal, q_strong)
    new_t1, raw_t2 = float(t1.ravel()[k]), t2.ravel()[k]
    new_t2 = None if np.isnan(raw_t2) else float(raw_t2)
    write_thresholds(policy_file, policy_file, policy, new_t1, new_t2)
    return {"target": str(goal), "thresholds": {"classifier": new_t1, "answer_checker": new_t2}}
