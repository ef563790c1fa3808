"""The answer checker's threshold from a whole trace, not only its labelled share.

A few dozen labels make the APGR of each checker threshold jagged when measured on the labelled
requests alone. Here the labels teach only the checker's calibration — P(cheap answer inadequate) as
a logistic function of the checker's logit, two parameters — and that calibration is applied to the
checker's score of *every* traced cheap answer (the walk's own, or an exploring shadow's). The
threshold kept is the one whose expected policy curve (classifier threshold swept: a request is sent
to the strong model when its score reaches t1, or when its cheap answer's checker score reaches t2;
the strong answer is the reference) has the highest APGR, averaged over neighbouring thresholds.

    checker_threshold_from_traces(policy, rows) -> (t2, report) | (None, reason)

None when it cannot judge (no answer_checker, fewer than MIN_LABELS judged labels, or a calibration
that does not rise with the checker's score): the caller then measures on the labelled requests.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cascade.learning.labels import judged_answer
from cascade.replay.checks import swept_checker

MIN_LABELS = 20          # judged labelled answers needed to fit the two-parameter calibration
SMOOTH = 4               # a threshold's APGR is averaged with its SMOOTH neighbours either side
GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


def cheap_answers(rows: Sequence[dict[str, Any]], cheap: str) -> list[tuple[dict[str, Any], str]]:
    """(request, the cheap rung's answer text) of every request whose cheap answer is in the trace."""
    out = []
    for row in rows:
        texts = [a.get("answer") for a in row.get("attempts", ())
                 if a.get("model") == cheap and a.get("status") in ("ok", "check_failed")]
        text = texts[-1] if texts and isinstance(texts[-1], str) else None
        if text is None and row.get("model") == cheap and isinstance(row.get("answer"), str):
            text = row["answer"]
        if text is not None and isinstance(row.get("prompt"), str):
            out.append((row, text))
    return out


def checker_threshold_from_traces(policy: Any, rows: Sequence[dict[str, Any]]) -> tuple[float | None, dict[str, Any]]:
    """The checker threshold of the best expected APGR over ``rows`` (labels merged), with a report."""
    from classifiers import load_answer_checker, load_classifier
    spec = swept_checker(policy)
    if spec is None:
        return None, {"skipped": "the policy has no answer_checker check"}
    cheap = policy.escalation.ladders["text"][0].model
    pairs = cheap_answers(rows, cheap)
    checker = load_answer_checker(str(spec.param("artifact", "default")))
    prompts, answers = [r["prompt"] for r, _ in pairs], [a for _, a in pairs]
    judges = getattr(checker, "judges", None)
    judged = np.array([judges is None or bool(judges(p, a)) for p, a in zip(prompts, answers)], dtype=bool)
    score = np.asarray(checker.score(prompts, answers), dtype=float) if pairs else np.zeros(0)
    score = np.where(judged, score, -np.inf)                  # an abstaining checker never escalates
    labels = [(i, judged_answer(r) == a, float(r["label"]["quality"]) < 0.5) for i, (r, a) in enumerate(pairs)
              if "label" in r and (r["label"].get("explores") or r.get("model") == cheap)]
    fit = [(i, bad) for i, same, bad in labels if same and judged[i]]
    if len(fit) < MIN_LABELS or len({bad for _, bad in fit}) < 2:
        return None, {"skipped": f"{len(fit)} labelled cheap answers the checker judges (need {MIN_LABELS}, both kinds)"}
    p_bad = _calibrated(score, judged, fit)
    if p_bad is None:
        return None, {"skipped": "inadequate answers do not score higher on the checker: the threshold is measured "
                                 "on the labelled requests"}
    routed = np.asarray(load_classifier(policy.routing.classifier).score(prompts), dtype=float)
    apgr = smoothed(np.array([expected_apgr(routed, score, t2, 1.0 - p_bad) for t2 in GRID]))
    k = int(np.nanargmax(apgr))
    return float(GRID[k]), {"answers": len(pairs), "labelled": len(fit), "expected_apgr": round(float(apgr[k]), 4)}


def _calibrated(score: np.ndarray, judged: np.ndarray, fit: list[tuple[int, bool]]) -> np.ndarray | None:
    """P(inadequate) of every answer: logistic in the checker's logit, fitted on the labelled ones
    (None when it does not rise with the score). Answers the checker does not judge: the labels' rate."""
    from sklearn.linear_model import LogisticRegression
    logit = np.log(np.clip(np.where(judged, score, 0.5), 1e-6, 1 - 1e-6) /
                   (1 - np.clip(np.where(judged, score, 0.5), 1e-6, 1 - 1e-6)))
    idx = np.array([i for i, _ in fit])
    y = np.array([bad for _, bad in fit], dtype=int)
    model = LogisticRegression(C=1.0).fit(logit[idx, None], y)
    if model.coef_[0, 0] <= 0:
        return None
    return np.where(judged, model.predict_proba(logit[:, None])[:, 1], y.mean())


def expected_apgr(routed: np.ndarray, checked: np.ndarray, t2: float, q_cheap: np.ndarray) -> float:
    """APGR of the curve t1 traces (strong answer quality 1, the cheap one's expected quality ``q_cheap``)."""
    from classifiers.metrics import curve_apgr
    shares, quality = [], []
    for t1 in GRID:
        strong = (routed >= t1) | (checked >= t2)
        shares.append(float(strong.mean()))
        quality.append(float(np.where(strong, 1.0, q_cheap).mean()))
    base = float(q_cheap.mean())
    return float("nan") if base >= 1.0 - 1e-12 else curve_apgr(shares, quality, base, 1.0)


def smoothed(values: np.ndarray, half: int = SMOOTH) -> np.ndarray:
    """Moving average over ``half`` neighbours either side (NaN ignored; all-NaN windows stay NaN)."""
    out = np.full(len(values), np.nan)
    for j in range(len(values)):
        window = values[max(0, j - half): j + half + 1]
        if np.isfinite(window).any():
            out[j] = float(np.nanmean(window))
    return out
