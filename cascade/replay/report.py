"""The replay report: every figure as a JSON-ready dict (schema ``deepseek-cascade/replay-report-v1``).

Rows, each with quality, total_usd, usd_per_1k, strong_share, quality_retained, savings_vs_strong and
the routing metrics apgr, cpt50, cpt80, aiq (null where a metric does not apply):

* ``policy``        the policy as the engine runs it (classifier + checks + escalation), at its own
                    thresholds; its metrics are those of the curve its classifier threshold traces
                    (101 thresholds) at its checker threshold;
* ``classifier``    the policy's classifier alone (route by score >= thresholds[0], no checks);
                    RouteLLM's APGR / CPT of its ranking, RouterBench's AIQ of its cost-quality curve;
* ``always_cheap``, ``always_strong`` (the ladder's first / last rung, no checks), ``random`` (the
  same strong-call share as the policy, at random), ``oracle`` (strong exactly where it is better).

Metrics come from :mod:`classifiers.metrics`. Baselines and router metrics use the requests with an
outcome of both the cheap and the strong model (all of them, for outcome folders). AIQ adds the
always-cheap and always-strong points to each router's points, so every AIQ spans the same cost range.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from classifiers import metrics

from cascade.replay.executor import BEST_ANSWER, FAILED, OK, REFUSED, Replayed
from cascade.replay.run import ReplayRun
from cascade.replay.sweep import differences, first_rung, outcomes_at

SCHEMA = "deepseek-cascade/replay-report-v1"
CURVE_POINTS = 101


def num(x: Any) -> float | None:
    """A JSON-safe float (None for NaN / inf / missing)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def build_report(run: ReplayRun) -> dict[str, Any]:
    data, policy = run.data, run.policy
    pair = data.available[:, 0] & data.available[:, -1]
    base = _baselines(run, pair)
    q_strong, c_strong = base["always_strong"]["quality"], base["always_strong"]["total_usd"]
    op = _operating_point(run.engine, data.aliases, len(data))
    _relative(op, q_strong, c_strong, base["n"])
    op.update(_cascade_metrics(run, base, pair))
    rows = {"policy": op, **{k: v for k, v in base.items() if isinstance(v, dict)}}
    for name, row in rows.items():
        if name != "policy":
            _relative(row, q_strong, c_strong, base["n"])
    vector = outcomes_at(run.arrays, first_rung(run.arrays, run.arrays.t1), run.arrays.t2)
    return {
        "schema": SCHEMA,
        "policy": {"name": policy.name, "source": run.policy_source, "classifier": policy.routing.classifier,
                   "thresholds": list(policy.routing.thresholds), "checker_threshold": run.arrays.t2,
                   "on_exhausted": policy.escalation.on_exhausted,
                   "per_request_usd": policy.budgets.per_request_usd},
        "data": _data_section(run, base["n"]),
        "checks": {"evaluated": dict(run.engine.evaluated), "not_evaluated_counted_passed": dict(run.engine.unevaluated)},
        "rows": rows,
        "summary": summary(rows, data.aliases[-1] if data.aliases else "the strong model"),
        "traffic": {"answered": op.pop("answered_share"), "calls": op.pop("calls_share")},
        "by_source": _by_source(run) if len(data.sources) > 1 else None,
        "sweep": _sweep_section(run),
        "curves": _curves(run, pair),
        "engine_equals_vectorised": not differences(run.engine, vector),
        "notes": list(data.notes) + _notes(run),
        "timings_s": dict(run.timings),
    }


def summary(rows: dict[str, Any], strong: str) -> dict[str, Any] | None:
    """What the policy buys, in plain words: its cost and quality against always-strong, and what random
    routing keeps at the same cost / costs for the same quality (random mixes interpolate linearly)."""
    p, lo, hi = rows.get("policy"), rows.get("always_cheap"), rows.get("always_strong")
    if not p or not lo or not hi or None in (lo.get("quality"), hi.get("quality")) or not hi["total_usd"]:
        return None
    per = lambda row: row["total_usd"] / max(row["n"], 1)                  # noqa: E731
    cp, cc, cs, qp, qc, qs = per(p), per(lo), per(hi), p["quality"], lo["quality"], hi["quality"]
    share_at_cost = min(max((cp - cc) / (cs - cc), 0.0), 1.0) if cs > cc else 0.0
    random_quality = qc + share_at_cost * (qs - qc)
    share_for_quality = (qp - qc) / (qs - qc) if qs > qc else None
    random_cost = cc + share_for_quality * (cs - cc) if share_for_quality is not None and 0 <= share_for_quality <= 1 else None
    out = {"savings_vs_strong": num(1 - cp / cs), "quality_retained": num(qp / qs) if qs else None,
           "random_quality_retained_at_same_cost": num(random_quality / qs) if qs else None,
           "random_cost_at_same_quality_vs_strong": num(random_cost / cs) if random_cost is not None else None}
    cheaper = f"{out['savings_vs_strong']:.0%} cheaper than" if cp <= cs else f"{-out['savings_vs_strong']:.0%} dearer than"
    line = (f"{cheaper} always {strong} at {qp / qs:.1%} of its quality; random routing at that cost keeps "
            f"{random_quality / qs:.1%}") if qs else f"{cheaper} always {strong}"
    if random_cost is not None:
        line += f", and needs {random_cost / cs:.0%} of always {strong}'s cost for the same quality"
    elif share_for_quality is not None and share_for_quality > 1:
        line += "; no random mix of the two reaches that quality"
    out["line"] = line
    return out


def _operating_point(e: Replayed, aliases: tuple[str, ...], n: int) -> dict[str, Any]:
    d = max(n, 1)
    answered = {a: float(np.mean(e.answered == r)) if n else 0.0 for r, a in enumerate(aliases)}
    answered["none"] = float(np.mean(e.answered < 0)) if n else 0.0
    return {
        "n": n, "quality": float(e.quality_units.sum()) / 1e9 / d, "total_usd": float(e.cost_nano.sum()) / 1e9,
        "usd_per_1k": float(e.cost_nano.sum()) / 1e9 / d * 1000.0,
        "strong_share": float(e.calls[:, -1].sum()) / d, "escalation_rate": float(e.escalated.sum()) / d,
        "failure_rate": float(np.isin(e.outcome, (FAILED, REFUSED)).sum()) / d,
        "refused_rate": float((e.outcome == REFUSED).sum()) / d,
        "best_answer_rate": float((e.outcome == BEST_ANSWER).sum()) / d,
        "accepted_rate": float((e.outcome == OK).sum()) / d,
        "answered_share": answered,
        "calls_share": {a: float(e.calls[:, r].sum()) / d for r, a in enumerate(aliases)},
        "missing_outcome_calls": e.missing_calls,
    }


def _relative(row: dict[str, Any], q_strong: float | None, c_strong: float | None, n_pair: int) -> None:
    """quality_retained and savings_vs_strong (per request, so rows over different counts compare)."""
    n = row.get("n") or 1
    strong_per_req = c_strong / max(n_pair, 1) if c_strong is not None else None
    row["quality_retained"] = num(row["quality"] / q_strong) if q_strong else None
    row["savings_vs_strong"] = num(1.0 - (row["total_usd"] / n) / strong_per_req) if strong_per_req else None


def _point(quality: float, total: float, n: int, strong_share: float, **extra: Any) -> dict[str, Any]:
    return {"n": n, "quality": float(quality), "total_usd": float(total), "usd_per_1k": float(total) / max(n, 1) * 1000.0,
            "strong_share": float(strong_share), "apgr": None, "cpt50": None, "cpt80": None, "aiq": None, **extra}


def _safe(fn: Any, *args: Any) -> float | None:
    try:
        return num(fn(*args))
    except ValueError:          # PGR undefined: both models equally good on average
        return None


def _router_metrics(scores: np.ndarray, qc: np.ndarray, qs: np.ndarray, cc: np.ndarray, cs: np.ndarray) -> dict:
    _, quality = metrics.quality_curve(scores, qc, qs)
    return {"apgr": _safe(metrics.apgr, scores, qc, qs), "cpt50": _safe(metrics.cpt, scores, qc, qs, 0.5),
            "cpt80": _safe(metrics.cpt, scores, qc, qs, 0.8),
            "aiq": num(metrics.aiq(metrics.cost_curve(scores, cc, cs), quality))}


def pair_arrays(run: ReplayRun, pair: np.ndarray) -> tuple[np.ndarray, ...]:
    d = run.data
    return (run.scores[pair], d.quality[pair, 0], d.quality[pair, -1], d.cost_usd[pair, 0], d.cost_usd[pair, -1])


def _baselines(run: ReplayRun, pair: np.ndarray) -> dict[str, Any]:
    s, qc, qs, cc, cs = pair_arrays(run, pair)
    n = int(pair.sum())
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return {"n": 0, "always_strong": {"quality": None, "total_usd": None}}
    share = float(run.engine.calls[:, -1].mean()) if len(run.data) else 0.0
    out["always_cheap"] = _point(qc.mean(), cc.sum(), n, 0.0)
    out["always_strong"] = _point(qs.mean(), cs.sum(), n, 1.0)
    rnd = metrics.random_scores(n)
    out["random"] = _point(qc.mean() + share * (qs.mean() - qc.mean()), cc.sum() + share * (cs.sum() - cc.sum()), n,
                           share, **_router_metrics(rnd, qc, qs, cc, cs))
    better = qs > qc
    out["oracle"] = _point(np.where(better, qs, qc).mean(), np.where(better, cs, cc).sum(), n, better.mean(),
                           **_router_metrics(metrics.oracle_scores(qc, qs), qc, qs, cc, cs))
    t1 = run.arrays.t1 if run.arrays.t1 is not None else math.inf
    o = metrics.cascade_outcome(s, np.zeros(n), t1, math.inf, qc, qs, cc, cs)
    out["classifier"] = _point(o.quality, o.cost, n, o.strong_share, **_router_metrics(s, qc, qs, cc, cs))
    return out


def policy_curve(run: ReplayRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strong_share, quality, total_usd) over the t1 grid at the policy's checker threshold."""
    sw = run.sweep
    j = sw.t2.index(run.arrays.t2) if run.arrays.t2 in sw.t2 else 0
    return sw.column("strong_share")[j], sw.column("quality")[j], sw.column("total_usd")[j]


def _cascade_metrics(run: ReplayRun, base: dict[str, Any], pair: np.ndarray) -> dict[str, Any]:
    if not pair.all() or "always_cheap" not in base:
        return {"apgr": None, "cpt50": None, "cpt80": None, "aiq": None}
    shares, quality, cost = policy_curve(run)
    q_c, q_s = base["always_cheap"]["quality"], base["always_strong"]["quality"]
    c_c, c_s = base["always_cheap"]["total_usd"], base["always_strong"]["total_usd"]
    x, q = np.r_[0.0, shares, 1.0], np.r_[q_c, quality, q_s]

    def cpt(p: float) -> float | None:
        return num(metrics.curve_cost_at_quality(x, q, q_c + p * (q_s - q_c)))
    return {"apgr": _safe(metrics.curve_apgr, shares, quality, q_c, q_s), "cpt50": cpt(0.5), "cpt80": cpt(0.8),
            "aiq": num(metrics.aiq(np.r_[c_c, cost, c_s], np.r_[q_c, quality, q_s]))}


def _data_section(run: ReplayRun, n_pair: int) -> dict[str, Any]:
    d = run.data
    recorded = d.cost_recorded & d.available
    prices = {}
    for r, alias in enumerate(d.aliases):
        k, m = int(recorded[:, r].sum()), int((d.available[:, r] & ~d.cost_recorded[:, r]).sum())
        prices[alias] = ("no outcome recorded" if k == m == 0 else "dataset cost_usd" if m == 0
                         else "policy catalog price x tokens" if k == 0
                         else f"mixed: {k} from dataset cost_usd, {m} from the catalog price x tokens")
    return {"kind": d.kind, "sources": list(d.sources), "split": d.split, "n_requests": len(d), "n_paired": n_pair,
            "n_dropped": d.dropped, "ladder": list(d.aliases), "cheap": d.aliases[0], "strong": d.aliases[-1],
            "models": [dict(m) for m in d.mappings], "prices": prices, "scores": run.score_source}


def _by_source(run: ReplayRun) -> dict[str, Any]:
    out = {}
    e, d = run.engine, run.data
    for k, src in enumerate(d.sources):
        m = d.source == k
        n = int(m.sum())
        out[src] = {"n": n, "quality": float(e.quality_units[m].sum()) / 1e9 / max(n, 1),
                    "usd_per_1k": float(e.cost_nano[m].sum()) / 1e9 / max(n, 1) * 1000.0,
                    "strong_share": float(e.calls[m, -1].mean()) if n else 0.0,
                    "q_cheap": float(d.quality[m, 0].mean()) if n else None,
                    "q_strong": float(d.quality[m, -1].mean()) if n else None}
    return out


def _sweep_section(run: ReplayRun) -> dict[str, Any]:
    sw = run.sweep
    t1, t2 = np.meshgrid(sw.t1, np.array([np.nan if t is None else t for t in sw.t2]))
    cols = {name: sw.column(name) for name in ("quality", "usd_per_1k", "total_usd", "strong_share",
                                               "escalation_rate", "failure_rate")}
    points = {"t1": [num(x) for x in t1.ravel()], "t2": [num(x) for x in t2.ravel()],
              **{k: [float(x) for x in v.ravel()] for k, v in cols.items()}}
    outcomes = [metrics.CascadeOutcome(float(a), float(b) if b is not None else math.nan, q, c, s, e)
                for a, b, q, c, s, e in zip(t1.ravel(), [num(x) for x in t2.ravel()], points["quality"],
                                            points["usd_per_1k"], points["strong_share"], points["escalation_rate"])]
    front = metrics.frontier(outcomes, by="cost")
    return {"full": run.full_sweep, "t1_grid": [float(x) for x in sw.t1], "t2_grid": [num(x) for x in sw.t2],
            "points": points,
            "frontier": [{"t1": o.t1, "t2": num(o.t2), "quality": o.quality, "usd_per_1k": o.cost,
                          "strong_share": o.strong_share, "escalation_rate": o.escalated_share} for o in front],
            "aiq": num(metrics.aiq(cols["usd_per_1k"].ravel(), cols["quality"].ravel()))}


def _curves(run: ReplayRun, pair: np.ndarray) -> dict[str, Any]:
    """Downsampled curves for plots: (strong_share, quality, usd_per_1k)."""
    shares, quality, cost = policy_curve(run)
    n_all = max(len(run.data), 1)
    out = {"policy": {"strong_share": shares.tolist(), "quality": quality.tolist(),
                      "usd_per_1k": (cost / n_all * 1000.0).tolist()}}
    if not pair.any():
        return out
    s, qc, qs, cc, cs = pair_arrays(run, pair)
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    for name, scores in (("classifier", s), ("oracle", metrics.oracle_scores(qc, qs)), ("random", metrics.random_scores(len(s)))):
        x, q = metrics.quality_curve(scores, qc, qs)
        c = metrics.cost_curve(scores, cc, cs) / len(s) * 1000.0
        out[name] = {"strong_share": grid.tolist(), "quality": np.interp(grid, x, q).tolist(),
                     "usd_per_1k": np.interp(grid, x, c).tolist()}
    return out


def _notes(run: ReplayRun) -> list[str]:
    notes = []
    unevaluated = run.engine.unevaluated
    if unevaluated:
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(unevaluated.items()))
        notes.append(f"answer checks without a recorded answer text (or finish reason) counted as passed — {detail}")
    pair = run.data.available[:, 0] & run.data.available[:, -1]
    if not pair.all():
        notes.append(f"baselines and routing metrics use the {int(pair.sum())} of {len(pair)} request(s) with an "
                     "outcome of both the cheap and the strong model; the policy's curve metrics need all of them")
    if run.engine.missing_calls:
        notes.append(f"{run.engine.missing_calls} planned call(s) had no recorded outcome: replayed as failed calls")
    if run.data.kind == "outcomes":
        notes.append("not replayed: retries, circuit breakers, deadlines and per-user / global budget caps (no clock); "
                     "the per-request budget is replayed, since it needs none")
    return notes
