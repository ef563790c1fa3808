"""Routing metrics (pure numpy, no I/O): RouteLLM's APGR / CPT, RouterBench's AIQ, and cascades.

Conventions. ``scores`` rank prompts (higher = send to the strong model first); ``q_cheap`` and
``q_strong`` are per-prompt quality of each model's answer (e.g. 0/1 correctness). Routing the top
``k`` of ``n`` prompts gives quality ``(sum(q_cheap) + sum of the top-k gains) / n`` with
``gain = q_strong - q_cheap``. Ties in ``scores`` are broken in expectation (every prompt of a tied
group gets the group's mean gain), so a constant scorer is exactly the random router.

* ``PGR(x) = (quality(x) - q_c) / (q_s - q_c)`` where ``q_c``, ``q_s`` are the mean qualities of
  always-cheap and always-strong, and ``x = k / n`` is the strong-call share.
* ``APGR`` = mean of PGR over x in [0, 1]: exactly (trapezoids between the knots k/n; PGR is linear
  between them), or on ``n_points`` evenly spaced x as RouteLLM does.
* ``CPT(p)`` = smallest strong-call share x with PGR(x) >= p.
* ``AIQ`` = area under the upper convex hull of (cost, quality) points divided by the cost range.

A *cascade* routes a prompt to the strong model when its classifier score is >= ``t1``; otherwise
it takes the cheap answer unless the answer checker's score is >= ``t2``, in which case it pays for
both calls and returns the strong answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _arrays(*arrays: Sequence[float]) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if len({a.shape for a in out}) != 1:
        raise ValueError(f"arrays differ in length: {[a.shape[0] for a in out]}")
    return out


def _ranked_gains(scores: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Gains in descending-score order, each tied group replaced by its mean gain."""
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gains[order]
    if s.size == 0:
        return g
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, s.size])
    means = np.add.reduceat(g, starts) / sizes
    return np.repeat(means, sizes)


def quality_curve(scores: Sequence[float], q_cheap: Sequence[float],
                  q_strong: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, quality)`` at the ``n + 1`` knots ``x = k / n`` (top-k prompts sent to the strong model)."""
    s, qc, qs = _arrays(scores, q_cheap, q_strong)
    n = s.size
    if n == 0:
        raise ValueError("quality_curve needs at least one prompt")
    cum = np.r_[0.0, np.cumsum(_ranked_gains(s, qs - qc))]
    return np.arange(n + 1) / n, (qc.sum() + cum) / n


def pgr_curve(scores: Sequence[float], q_cheap: Sequence[float],
              q_strong: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, PGR(x))`` at the knots; raises ``ValueError`` when the two models tie on average."""
    x, q = quality_curve(scores, q_cheap, q_strong)
    q_c, q_s = q[0], q[-1]
    if np.isclose(q_s, q_c, rtol=0.0, atol=1e-12):
        raise ValueError("PGR is undefined: the strong and cheap models have equal mean quality")
    return x, (q - q_c) / (q_s - q_c)


def apgr(scores: Sequence[float], q_cheap: Sequence[float], q_strong: Sequence[float],
         n_points: int | None = None) -> float:
    """Average performance-gap recovered; exact area by default, else mean over ``n_points`` x's."""
    x, pgr = pgr_curve(scores, q_cheap, q_strong)
    if n_points is None:
        return float(np.sum((pgr[1:] + pgr[:-1]) * np.diff(x)) / 2.0)
    return float(np.mean(np.interp(np.linspace(0.0, 1.0, n_points), x, pgr)))


def cpt(scores: Sequence[float], q_cheap: Sequence[float], q_strong: Sequence[float],
        p: float) -> float:
    """Call-performance threshold: smallest strong-call share x with PGR(x) >= p (x in [0, 1])."""
    x, pgr = pgr_curve(scores, q_cheap, q_strong)
    return _first_reaching(x, pgr, p)


def _first_reaching(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """Smallest x on the piecewise-linear curve (x, y) with y >= target (nan if never)."""
    hit = np.flatnonzero(y >= target - 1e-12)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0 or y[i] == y[i - 1]:
        return float(x[i])
    t = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + min(max(t, 0.0), 1.0) * (x[i] - x[i - 1]))


def cost_curve(scores: Sequence[float], cost_cheap: Sequence[float],
               cost_strong: Sequence[float]) -> np.ndarray:
    """Total cost at each knot k = 0..n (top-k by score to the strong model; ties in expectation)."""
    s, cc, cs = _arrays(scores, cost_cheap, cost_strong)
    return cc.sum() + np.r_[0.0, np.cumsum(_ranked_gains(s, cs - cc))]


def cost_at_quality(scores: Sequence[float], q_cheap: Sequence[float], q_strong: Sequence[float],
                    cost_cheap: Sequence[float], cost_strong: Sequence[float],
                    quality_share: float = 0.95) -> float:
    """Cost (fraction of always-strong cost) of the cheapest routing reaching
    ``quality_share * mean(q_strong)``; nan if none does. Interpolates between knots."""
    _, q = quality_curve(scores, q_cheap, q_strong)
    costs = cost_curve(scores, cost_cheap, cost_strong)
    target = quality_share * q[-1]
    reach = q >= target - 1e-12
    if not reach.any():
        return float("nan")
    i = int(np.flatnonzero(reach)[0])
    c = costs[i]
    if i > 0 and q[i] > q[i - 1]:
        t = (target - q[i - 1]) / (q[i] - q[i - 1])
        c = costs[i - 1] + t * (costs[i] - costs[i - 1])
    return float(c / np.sum(cost_strong))


def random_scores(n: int) -> np.ndarray:
    """The random router in expectation: a constant score (all prompts tie)."""
    return np.zeros(n)


def oracle_scores(q_cheap: Sequence[float], q_strong: Sequence[float]) -> np.ndarray:
    """The oracle router: score = strong quality minus cheap quality (the best possible ranking)."""
    qc, qs = _arrays(q_cheap, q_strong)
    return qs - qc


def upper_hull(costs: Sequence[float], qualities: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Upper convex hull of (cost, quality) points, by increasing cost."""
    c, q = _arrays(costs, qualities)
    order = np.lexsort((-q, c))
    hull: list[tuple[float, float]] = []
    for ci, qi in zip(c[order], q[order]):
        if hull and ci == hull[-1][0]:
            continue  # same cost, lower quality (sorted by -q within a cost)
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (ci - c1) <= (qi - q1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append((float(ci), float(qi)))
    arr = np.array(hull)
    return arr[:, 0], arr[:, 1]


def aiq(costs: Sequence[float], qualities: Sequence[float]) -> float:
    """RouterBench's average improvement in quality: area under the upper convex hull of the
    (cost, quality) points divided by the cost range (single point: its quality)."""
    hc, hq = upper_hull(costs, qualities)
    c = np.asarray(costs, dtype=np.float64)
    span = float(c.max() - c.min())
    if span == 0.0:
        return float(hq.max())
    area = float(np.sum((hq[1:] + hq[:-1]) * np.diff(hc)) / 2.0)
    # the hull starts at the cheapest point and ends at the costliest hull point; extend flat
    area += float(hq[-1] * (c.max() - hc[-1]))
    return area / span


@dataclass(frozen=True)
class CascadeOutcome:
    """Result of one (t1, t2) cascade setting over a prompt set (means per prompt)."""

    t1: float
    t2: float
    quality: float
    cost: float           # total USD (or whatever unit the costs are in)
    strong_share: float   # share of prompts that call the strong model (direct or escalated)
    escalated_share: float


def cascade_outcome(cls_scores: Sequence[float], chk_scores: Sequence[float], t1: float, t2: float,
                    q_cheap: Sequence[float], q_strong: Sequence[float],
                    cost_cheap: Sequence[float], cost_strong: Sequence[float]) -> CascadeOutcome:
    """Quality and cost of the cascade ``classifier >= t1 -> strong; else cheap, escalated to
    strong (paying both) when checker >= t2``."""
    s1, s2, qc, qs, cc, cs = _arrays(cls_scores, chk_scores, q_cheap, q_strong, cost_cheap, cost_strong)
    direct = s1 >= t1
    escalate = ~direct & (s2 >= t2)
    strong = direct | escalate
    quality = float(np.mean(np.where(strong, qs, qc)))
    cost = float(np.sum(np.where(direct, cs, cc + np.where(escalate, cs, 0.0))))
    return CascadeOutcome(float(t1), float(t2), quality, cost, float(strong.mean()),
                          float(escalate.mean()))


def threshold_grid(scores: Sequence[float], n: int = 41) -> np.ndarray:
    """Candidate thresholds: ``n`` quantiles of ``scores`` plus +inf (never fires) and -inf."""
    s = np.asarray(scores, dtype=np.float64)
    qs = np.quantile(s, np.linspace(0.0, 1.0, n)) if s.size else np.array([])
    return np.unique(np.r_[-np.inf, qs, np.inf])


def cascade_sweep(cls_scores: Sequence[float], chk_scores: Sequence[float],
                  q_cheap: Sequence[float], q_strong: Sequence[float],
                  cost_cheap: Sequence[float], cost_strong: Sequence[float],
                  t1_grid: Sequence[float] | None = None,
                  t2_grid: Sequence[float] | None = None) -> list[CascadeOutcome]:
    """Every (t1, t2) pair of the two grids (default: :func:`threshold_grid` of each score)."""
    g1 = threshold_grid(cls_scores) if t1_grid is None else np.asarray(t1_grid, dtype=np.float64)
    g2 = threshold_grid(chk_scores) if t2_grid is None else np.asarray(t2_grid, dtype=np.float64)
    return [cascade_outcome(cls_scores, chk_scores, t1, t2, q_cheap, q_strong, cost_cheap, cost_strong)
            for t1 in g1 for t2 in g2]


def frontier(outcomes: Sequence[CascadeOutcome], by: str = "strong_share") -> list[CascadeOutcome]:
    """Pareto frontier: outcomes not beaten on quality by any with lower-or-equal ``by``
    (``strong_share`` or ``cost``), sorted by ``by``."""
    ranked = sorted(outcomes, key=lambda o: (getattr(o, by), -o.quality))
    front: list[CascadeOutcome] = []
    for o in ranked:
        if not front or o.quality > front[-1].quality + 1e-12:
            front.append(o)
    return front


def curve_apgr(shares: Sequence[float], qualities: Sequence[float], q_cheap: float,
               q_strong: float) -> float:
    """APGR of a routing curve given as (strong-call share, quality) points, e.g. cascade settings
    chosen on a calibration split and evaluated on test. The points are taken as they are (no
    envelope), sorted by share, anchored at (0, q_cheap) and (1, q_strong), joined linearly (a
    random mix of two settings realises the segment between them), and PGR is averaged over x."""
    x, q = _arrays(shares, qualities)
    if np.isclose(q_strong, q_cheap, rtol=0.0, atol=1e-12):
        raise ValueError("PGR is undefined: the strong and cheap models have equal mean quality")
    x, q = np.r_[0.0, x, 1.0], np.r_[q_cheap, q, q_strong]
    order = np.lexsort((q, x))
    x, q = x[order], q[order]
    pgr = (q - q_cheap) / (q_strong - q_cheap)
    return float(np.sum((pgr[1:] + pgr[:-1]) * np.diff(x)) / 2.0)


def curve_cost_at_quality(costs: Sequence[float], qualities: Sequence[float], target: float) -> float:
    """Lowest cost among (cost, quality) points (joined linearly by cost) reaching ``target``."""
    c, q = _arrays(costs, qualities)
    order = np.lexsort((-q, c))
    return _first_reaching(c[order], np.maximum.accumulate(q[order]), target)


def curve_cpt(shares: Sequence[float], qualities: Sequence[float], q_cheap: float, q_strong: float,
              p: float) -> float:
    """CPT(p) of a (strong-call share, quality) curve: smallest share (points joined linearly,
    anchored at (0, q_cheap) and (1, q_strong)) whose best quality so far recovers ``p`` of the gap."""
    x, q = _arrays(shares, qualities)
    x, q = np.r_[0.0, x, 1.0], np.r_[q_cheap, q, q_strong]
    order = np.lexsort((-q, x))
    pgr = (np.maximum.accumulate(q[order]) - q_cheap) / (q_strong - q_cheap)
    return _first_reaching(x[order], pgr, p)


def router_aiq(scores: Sequence[float], q_cheap: Sequence[float], q_strong: Sequence[float],
               cost_cheap: Sequence[float], cost_strong: Sequence[float]) -> float:
    """AIQ of a score-ranked router: its (cost, quality) points at every k, hull area / cost range."""
    _, q = quality_curve(scores, q_cheap, q_strong)
    return aiq(cost_curve(scores, cost_cheap, cost_strong), q)
