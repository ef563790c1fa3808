"""Routing metrics: hand-computed cases and properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers import metrics as M

QC = np.array([1.0, 0.0, 0.0, 1.0])
QS = np.array([1.0, 1.0, 1.0, 0.0])
# gains: 0, 1, 1, -1 ; q_cheap = 0.5, q_strong = 0.75


def test_quality_curve_hand_computed():
    x, q = M.quality_curve([0.1, 0.9, 0.8, 0.0], QC, QS)
    assert x.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert q.tolist() == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.75])


def test_apgr_exact_and_sampled_hand_computed():
    s = [0.1, 0.9, 0.8, 0.0]
    # PGR knots 0, 1, 2, 2, 1 -> trapezoids * 0.25: (0.5 + 1.5 + 2 + 1.5) * 0.25
    assert M.apgr(s, QC, QS) == pytest.approx(1.375)
    assert M.apgr(s, QC, QS, n_points=5) == pytest.approx((0 + 1 + 2 + 2 + 1) / 5)


def test_ties_are_broken_in_expectation():
    x, q = M.quality_curve([1.0, 1.0, 1.0, 1.0], QC, QS)
    assert q.tolist() == pytest.approx([0.5, 0.5625, 0.625, 0.6875, 0.75])
    assert M.apgr(M.random_scores(4), QC, QS) == pytest.approx(0.5)


def test_cpt_hand_computed():
    s = [0.1, 0.9, 0.8, 0.0]
    assert M.cpt(s, QC, QS, 0.5) == pytest.approx(0.125)
    assert M.cpt(s, QC, QS, 1.0) == pytest.approx(0.25)
    assert M.cpt(s, QC, QS, 2.0) == pytest.approx(0.5)
    assert np.isnan(M.cpt(s, QC, QS, 3.0))


def test_pgr_undefined_when_models_tie():
    with pytest.raises(ValueError):
        M.apgr([0.0, 1.0], [1.0, 0.0], [0.0, 1.0])


def test_cost_at_quality_hand_computed():
    s = [0.1, 0.9, 0.8, 0.0]
    cc, cs = np.ones(4), np.full(4, 10.0)
    # target 0.95 * 0.75 = 0.7125, reached between k=0 (0.5) and k=1 (0.75): t = 0.85
    # cost = 4 + 0.85 * 9 = 11.65 of 40
    assert M.cost_at_quality(s, QC, QS, cc, cs) == pytest.approx(11.65 / 40)


def test_aiq_hand_computed():
    # points (0, 0.5), (1, 0.9), (2, 1.0), and (1, 0.6) under the hull
    assert M.aiq([0, 1, 2, 1], [0.5, 0.9, 1.0, 0.6]) == pytest.approx((0.7 + 0.95) / 2)
    assert M.aiq([3.0], [0.4]) == pytest.approx(0.4)


def test_upper_hull_drops_points_below():
    c, q = M.upper_hull([0, 1, 2], [0.0, 0.2, 1.0])
    assert c.tolist() == [0.0, 2.0] and q.tolist() == [0.0, 1.0]


def test_cascade_outcome_hand_computed():
    cls = np.array([0.9, 0.1, 0.1, 0.1])
    chk = np.array([0.0, 0.9, 0.1, 0.1])
    cc, cs = np.ones(4), np.full(4, 10.0)
    o = M.cascade_outcome(cls, chk, 0.5, 0.5, QC, QS, cc, cs)
    # prompt 0 direct strong (1), prompt 1 escalated (1), prompts 2, 3 cheap (0, 1)
    assert o.quality == pytest.approx(0.75)
    assert o.cost == pytest.approx(10 + (1 + 10) + 1 + 1)
    assert o.strong_share == pytest.approx(0.5) and o.escalated_share == pytest.approx(0.25)


def test_cascade_sweep_and_frontier():
    cls = np.array([0.9, 0.1, 0.2, 0.3])
    chk = np.array([0.0, 0.9, 0.8, 0.1])
    outs = M.cascade_sweep(cls, chk, QC, QS, np.ones(4), np.full(4, 10.0))
    front = M.frontier(outs)
    shares = [o.strong_share for o in front]
    quals = [o.quality for o in front]
    assert shares == sorted(shares) and quals == sorted(quals)
    assert front[0].strong_share == 0.0 and front[-1].quality == pytest.approx(1.0)


def test_curve_apgr_hand_computed():
    # points (0.5, 0.75): PGR 1 at x=0.5 -> trapezoids: 0.25 + (1 + 1) / 2 * 0.5
    assert M.curve_apgr([0.5], [0.75], 0.5, 0.75) == pytest.approx(0.75)


outcomes = st.lists(st.tuples(st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 1.0]),
                              st.floats(0, 1, allow_nan=False)), min_size=2, max_size=40)


def _unpack(rows):
    qc, qs, s = (np.array(c) for c in zip(*rows))
    return qc, qs, s


@settings(max_examples=150, deadline=None)
@given(outcomes)
def test_oracle_is_best_and_random_is_half(rows):
    qc, qs, s = _unpack(rows)
    if qs.mean() <= qc.mean():  # PGR's normalisation assumes the strong model is better
        return
    best = M.apgr(M.oracle_scores(qc, qs), qc, qs)
    assert M.apgr(s, qc, qs) <= best + 1e-9
    assert M.apgr(M.random_scores(len(qc)), qc, qs) == pytest.approx(0.5)


@settings(max_examples=150, deadline=None)
@given(outcomes)
def test_quality_endpoints_and_oracle_monotone(rows):
    qc, qs, s = _unpack(rows)
    x, q = M.quality_curve(s, qc, qs)
    assert q[0] == pytest.approx(qc.mean()) and q[-1] == pytest.approx(qs.mean())
    assert x[0] == 0.0 and x[-1] == 1.0 and np.all(np.diff(x) > 0)
    # oracle ranking: quality rises while gains are positive, then falls: concave
    _, qo = M.quality_curve(M.oracle_scores(qc, qs), qc, qs)
    assert np.all(np.diff(qo, 2) <= 1e-12)


@settings(max_examples=100, deadline=None)
@given(outcomes, st.floats(0.05, 1.0))
def test_cpt_is_monotone_in_p(rows, p):
    qc, qs, s = _unpack(rows)
    if qs.mean() <= qc.mean():
        return
    lo, hi = M.cpt(s, qc, qs, p * 0.5), M.cpt(s, qc, qs, p)
    assert lo <= hi + 1e-12
    assert 0.0 <= hi <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 1)), min_size=1, max_size=30))
def test_aiq_bounded_by_quality_range(points):
    c, q = (np.array(v) for v in zip(*points))
    value = M.aiq(c, q)
    assert q.min() - 1e-9 <= value <= q.max() + 1e-9


@settings(max_examples=100, deadline=None)
@given(outcomes)
def test_cascade_extremes(rows):
    qc, qs, s = _unpack(rows)
    n = len(qc)
    cc, cs = np.ones(n), np.full(n, 5.0)
    never = M.cascade_outcome(s, s, np.inf, np.inf, qc, qs, cc, cs)
    always = M.cascade_outcome(s, s, -np.inf, np.inf, qc, qs, cc, cs)
    assert never.quality == pytest.approx(qc.mean()) and never.cost == pytest.approx(n)
    assert always.quality == pytest.approx(qs.mean()) and always.cost == pytest.approx(5.0 * n)
