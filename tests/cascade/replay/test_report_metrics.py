"""The report's routing metrics are classifiers.metrics on the same arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from classifiers import metrics
from cascade.replay.report import build_report
from cascade.replay.run import run_replay
from tests.cascade.replay.helpers import TableScorer, write_folder, write_policy


@pytest.fixture(scope="module")
def run_and_doc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    rng = np.random.default_rng(3)
    n = 300
    texts = [f"prompt {i}" for i in range(n)]
    gain = rng.random(n)
    qc = (rng.random(n) < 0.5).astype(float)
    qs = np.maximum(qc, (rng.random(n) < gain).astype(float))
    rows = [(f"p{i}", "C", qc[i], int(rng.integers(10, 500)), None) for i in range(n)]
    rows += [(f"p{i}", "S", qs[i], int(rng.integers(10, 500)), None) for i in range(n)]
    folder = write_folder(tmp / "d", [(f"p{i}", t, int(rng.integers(50, 900))) for i, t in enumerate(texts)], rows,
                          [(f"p{i}", m, "an answer") for i in range(n) for m in ("C", "S")])
    scorer = TableScorer({t: float(np.clip(g + rng.normal(0, 0.3), 0, 1)) for t, g in zip(texts, gain)})
    run = run_replay(str(write_policy(tmp)), [folder], split="all", classifier=scorer, full_sweep=True)
    return run, build_report(run)


def arrays(run):
    d = run.data
    return run.scores, d.quality[:, 0], d.quality[:, -1], d.cost_usd[:, 0], d.cost_usd[:, -1]


def test_classifier_row_is_routellm_and_routerbench_metrics(run_and_doc):
    run, doc = run_and_doc
    s, qc, qs, cc, cs = arrays(run)
    row = doc["rows"]["classifier"]
    assert row["apgr"] == metrics.apgr(s, qc, qs)
    assert row["cpt50"] == metrics.cpt(s, qc, qs, 0.5) and row["cpt80"] == metrics.cpt(s, qc, qs, 0.8)
    assert row["aiq"] == metrics.aiq(metrics.cost_curve(s, cc, cs), metrics.quality_curve(s, qc, qs)[1])
    o = metrics.cascade_outcome(s, np.zeros_like(s), 0.5, math.inf, qc, qs, cc, cs)
    assert (row["quality"], row["total_usd"], row["strong_share"]) == (o.quality, o.cost, o.strong_share)


def test_baseline_rows(run_and_doc):
    run, doc = run_and_doc
    s, qc, qs, cc, cs = arrays(run)
    rows = doc["rows"]
    assert rows["always_cheap"]["quality"] == qc.mean() and rows["always_strong"]["total_usd"] == cs.sum()
    oracle = metrics.oracle_scores(qc, qs)
    assert rows["oracle"]["apgr"] == metrics.apgr(oracle, qc, qs)
    assert rows["oracle"]["cpt80"] == metrics.cpt(oracle, qc, qs, 0.8)
    assert rows["oracle"]["quality"] == np.maximum(qc, qs).mean()
    rnd = metrics.random_scores(len(s))
    assert rows["random"]["apgr"] == pytest.approx(0.5) == metrics.apgr(rnd, qc, qs)
    assert rows["random"]["aiq"] == metrics.aiq(metrics.cost_curve(rnd, cc, cs), metrics.quality_curve(rnd, qc, qs)[1])


def test_policy_row_metrics_are_those_of_its_threshold_curve(run_and_doc):
    run, doc = run_and_doc
    _, qc, qs, cc, cs = arrays(run)
    pts = doc["sweep"]["points"]
    assert doc["sweep"]["full"] and len(pts["t1"]) == 101            # no answer checker: one t2
    shares, quality, cost = (np.array(pts[k]) for k in ("strong_share", "quality", "total_usd"))
    row = doc["rows"]["policy"]
    assert row["apgr"] == metrics.curve_apgr(shares, quality, qc.mean(), qs.mean())
    assert row["aiq"] == metrics.aiq(np.r_[cc.sum(), cost, cs.sum()], np.r_[qc.mean(), quality, qs.mean()])
    x, q = np.r_[0.0, shares, 1.0], np.r_[qc.mean(), quality, qs.mean()]
    assert row["cpt50"] == metrics.curve_cost_at_quality(x, q, qc.mean() + 0.5 * (qs.mean() - qc.mean()))
    outcomes = [metrics.CascadeOutcome(a, math.nan, b, c, d, e) for a, b, c, d, e in
                zip(pts["t1"], pts["quality"], pts["usd_per_1k"], pts["strong_share"], pts["escalation_rate"])]
    assert [p["t1"] for p in doc["sweep"]["frontier"]] == [o.t1 for o in metrics.frontier(outcomes, by="cost")]


def test_report_is_strict_json(run_and_doc):
    import json
    _, doc = run_and_doc
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert again["schema"] == "deepseek-cascade/replay-report-v1"
    assert set(again["rows"]) == {"policy", "classifier", "always_cheap", "always_strong", "random", "oracle"}


def test_summary_says_what_the_policy_buys_in_plain_words():
    from cascade.replay.report import summary
    rows = {"policy": {"n": 100, "quality": 0.66, "total_usd": 2.0},
            "always_cheap": {"n": 100, "quality": 0.5, "total_usd": 0.1},
            "always_strong": {"n": 100, "quality": 0.7, "total_usd": 4.0}}
    out = summary(rows, "gpt-4o")
    assert out["savings_vs_strong"] == 0.5 and abs(out["quality_retained"] - 0.66 / 0.7) < 1e-12
    # random at $2.0: share (2.0-0.1)/3.9; quality 0.5 + share*0.2; same quality 0.66: share 0.8 -> $3.22
    assert abs(out["random_quality_retained_at_same_cost"] - (0.5 + 1.9 / 3.9 * 0.2) / 0.7) < 1e-12
    assert abs(out["random_cost_at_same_quality_vs_strong"] - (0.1 + 0.8 * 3.9) / 4.0) < 1e-12
    assert out["line"].startswith("50% cheaper than always gpt-4o at 94.3% of its quality; random routing at that cost keeps 85.3%")
    dear = summary({**rows, "policy": {"n": 100, "quality": 0.75, "total_usd": 5.0}}, "gpt-4o")
    assert dear["line"].startswith("25% dearer than") and "no random mix of the two reaches that quality" in dear["line"]
