"""The engine's decision rule and the replay executor's walk, vectorised over requests, for sweeps.

For a policy and recorded data, :func:`decision_arrays` precomputes what the rule depends on (per
request and rung: usable, estimated cost, outcome, check results). :func:`outcomes_at` then applies,
for every request at once, exactly what ``decide`` + :class:`~cascade.replay.executor.ReplayExecutor`
do one request at a time: start rung from the thresholds, usable rungs at or above it (else the
strongest usable), the per-request budget prefix and downgrade, the walk with checks, acceptance,
``best_answer`` / ``raise``. tests/cascade/replay check both paths give identical per-request results.

:func:`sweep` varies ``routing.thresholds[0]`` (t1) over a grid and, when the policy has an
``answer_checker``, that checker's threshold (t2). A request's start rung is ``a + [score >= t1]``
(``a`` = the other thresholds it reaches), so only two outcomes per request and t2 exist; totals over
t1 come from one sort by score and cumulative sums. Sums are integers (quality in 1e-9 units, cost in
nano-dollars): exact, whatever the order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from policies.errors import SweepMismatch
from policies.schema import Policy

from cascade.replay.checks import CHECKER, CheckTable, checker_threshold, spec_key, swept_checker
from cascade.replay.data import ReplayData
from cascade.replay.executor import BEST_ANSWER, FAILED, OK, REFUSED, Replayed

GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass
class DecisionArrays:
    score: np.ndarray          # (N,) classifier score
    base_first: np.ndarray     # (N,) thresholds[1:] reached
    usable: np.ndarray         # (N, R)
    est: np.ndarray            # (N, R) the engine's worst-case cost estimate
    room: float | None         # per-request budget (None = no limit)
    downgrade: bool            # budgets.at_cap == "downgrade"
    available: np.ndarray      # (N, R)
    quality_units: np.ndarray  # (N, R) int64
    cost_nano: np.ndarray      # (N, R) int64
    fixed_pass: np.ndarray     # (N, R) every check but the swept checker passes
    fixed_npass: np.ndarray    # (N, R)
    swept_count: np.ndarray    # (R,)
    chk: np.ndarray            # (N, R) swept checker score (NaN = passes)
    strength: np.ndarray       # (R,)
    best_answer: bool
    check_last_rung: bool      # False: the plan's last attempt carries no checks (``decide``)
    agree_has: np.ndarray      # (R,) the rung has an agreement check
    agree_parallel: np.ndarray  # (R,) its second opinion is asked at once
    agree_pass: np.ndarray     # (N, R) the second opinion agrees (or the check abstains)
    agree_asks: np.ndarray     # (N, R) the second model would be called
    consult_nano: np.ndarray   # (N, R) what that call costs
    empty: np.ndarray          # (N, R) the recorded answer has no visible text (never the best answer)
    t1: float | None           # the policy's thresholds[0]
    t2: float | None           # the policy's swept-checker threshold
    aliases: tuple[str, ...] = ()
    pin_floor: np.ndarray | None = None   # (N,) session pins: the rung a request starts at or above (the engine's)


def decision_arrays(policy: Policy, data: ReplayData, scores: np.ndarray, checks: CheckTable) -> DecisionArrays:
    ladder = policy.escalation.ladders["text"]
    n, r_count = len(data), len(ladder)
    usable = np.zeros((n, r_count), dtype=bool)
    est = np.zeros((n, r_count))
    tokens = data.plan_tokens.astype(np.float64)
    for r, rung in enumerate(ladder):
        spec = policy.catalog[rung.model]
        max_tokens = min(policy.routing.default_max_tokens, spec.max_output_tokens)
        usable[:, r] = data.plan_tokens + max_tokens <= spec.context_window
        est[:, r] = (tokens * spec.price.input_per_1m + max_tokens * spec.price.output_per_1m) / 1e6
        agreement = next((c for c in policy.checks_for(rung) if c.name == "agreement"), None)
        if agreement is not None:                      # the plan's worst case counts the second opinion
            other = policy.catalog[str(agreement.param("with"))]
            extra = min(policy.routing.default_max_tokens, other.max_output_tokens)
            est[:, r] += (tokens * other.price.input_per_1m + extra * other.price.output_per_1m) / 1e6
    thresholds = policy.routing.thresholds
    score = np.asarray(scores, dtype=np.float64)
    base = sum((score >= t).astype(np.int64) for t in thresholds[1:]) if len(thresholds) > 1 else np.zeros(n, np.int64)
    swept = swept_checker(policy)
    fixed_pass, fixed_npass, swept_count, chk = checks.arrays(swept)
    has, parallel, agree_pass, asks, consult_nano = checks.agreement_arrays()
    empty = np.zeros((n, r_count), dtype=bool)
    if data.responses is not None:
        for r in range(r_count):
            empty[:, r] = [t is not None and not t.strip() for t in data.responses[r]]
    return DecisionArrays(
        empty=empty,
        agree_has=has, agree_parallel=parallel, agree_pass=agree_pass, agree_asks=asks, consult_nano=consult_nano,
        score=score, base_first=np.asarray(base, dtype=np.int64), usable=usable, est=est,
        room=policy.budgets.per_request_usd, downgrade=policy.budgets.at_cap == "downgrade",
        available=data.available, quality_units=data.quality_units, cost_nano=data.cost_nano,
        fixed_pass=fixed_pass, fixed_npass=fixed_npass, swept_count=swept_count, chk=chk,
        strength=np.array([policy.catalog[r.model].strength for r in ladder], dtype=np.int64),
        best_answer=policy.escalation.on_exhausted == "best_answer",
        check_last_rung=policy.escalation.check_last_rung,
        t1=thresholds[0] if thresholds else None,
        t2=checker_threshold(swept) if swept is not None else None, aliases=data.aliases)


def first_rung(a: DecisionArrays, t1: float | None) -> np.ndarray:
    """``start_rung`` of every request with thresholds[0] = t1 (None: no thresholds[0])."""
    first = a.base_first if t1 is None else a.base_first + (a.score >= t1)
    return first if a.pin_floor is None else np.maximum(first, a.pin_floor)


def plan_mask(a: DecisionArrays, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(plan (N, R) bool: the rungs of each request's Plan, refused (N,)) — as ``decide``."""
    n, r_count = a.usable.shape
    idx = np.arange(r_count)
    above = a.usable & (idx[None, :] >= first[:, None])
    has_usable = a.usable.any(axis=1)
    max_usable = r_count - 1 - np.argmax(a.usable[:, ::-1], axis=1)
    fallback = (idx[None, :] == max_usable[:, None]) & has_usable[:, None]
    chosen = np.where(above.any(axis=1)[:, None], above, fallback)
    if a.room is None:
        return chosen, ~has_usable
    plan = np.zeros_like(chosen)
    total, broken = np.zeros(n), np.zeros(n, dtype=bool)
    for r in range(r_count):
        take = chosen[:, r] & ~broken
        over = take & (total + a.est[:, r] > a.room)
        broken |= over
        plan[:, r] = take & ~over
        total = np.where(plan[:, r], total + a.est[:, r], total)
    empty = ~plan.any(axis=1) & has_usable
    if a.downgrade and empty.any():
        best, best_est = np.full(n, -1), np.full(n, np.inf)
        for r in range(r_count):
            fits = empty & a.usable[:, r] & (a.est[:, r] <= a.room) & (a.est[:, r] < best_est)
            best, best_est = np.where(fits, r, best), np.where(fits, a.est[:, r], best_est)
        rows = np.flatnonzero(best >= 0)
        plan[rows, best[rows]] = True
    return plan, ~plan.any(axis=1)


def outcomes_at(a: DecisionArrays, first: np.ndarray, t2: float | None) -> Replayed:
    """Every request's replay at start rungs ``first`` and swept-checker threshold ``t2``."""
    plan, refused = plan_mask(a, first)
    n, r_count = plan.shape
    done, escalated, any_cand = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
    answered = np.full(n, -1, dtype=np.int64)
    cost = np.zeros(n, dtype=np.int64)
    calls = np.zeros((n, r_count), dtype=bool)
    before = np.zeros(n, dtype=np.int64)
    best, best_np, best_st = np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    threshold = np.inf if t2 is None else t2
    last = r_count - 1 - np.argmax(plan[:, ::-1], axis=1)      # each plan's last attempt
    for r in range(r_count):
        att = plan[:, r] & ~done
        calls[:, r] = att
        cand = att & a.available[:, r]
        cost += np.where(cand, a.cost_nano[:, r], 0)
        if a.swept_count[r]:
            chk = a.chk[:, r]
            chk_ok = np.isnan(chk) | (chk < threshold)
        else:
            chk_ok = np.ones(n, dtype=bool)
        npass = a.fixed_npass[:, r] + a.swept_count[r] * chk_ok
        fixed_pass = a.fixed_pass[:, r]
        unchecked = (last == r) if not a.check_last_rung else np.zeros(n, dtype=bool)
        if a.agree_has[r]:                                       # as the executor: asked once the others pass
            has = ~unchecked
            others = fixed_pass & chk_ok
            agrees = a.agree_pass[:, r] & (a.agree_parallel[r] | ~a.agree_asks[:, r] | others)
            paid = has & a.agree_asks[:, r] & (att if a.agree_parallel[r] else cand & others)
            cost += np.where(paid, a.consult_nano[:, r], 0)
            npass = npass + (has & agrees)
            fixed_pass = fixed_pass & (agrees | ~has)
        if not a.check_last_rung:                                # its checks are dropped: nothing to pass
            chk_ok, fixed_pass = chk_ok | unchecked, fixed_pass | unchecked
            npass = np.where(unchecked, 0, npass)
        usable = cand & ~a.empty[:, r]
        better = usable & ((npass > best_np) | ((npass == best_np) & (a.strength[r] > best_st)))
        best, best_np = np.where(better, r, best), np.where(better, npass, best_np)
        best_st = np.where(better, a.strength[r], best_st)
        any_cand |= usable
        accept = cand & fixed_pass & chk_ok
        answered = np.where(accept, r, answered)
        escalated |= accept & (before > 0)
        done |= accept
        before += plan[:, r]
    exhausted = ~done & ~refused
    rescued = exhausted & any_cand & a.best_answer
    answered = np.where(rescued, best, answered)
    escalated |= rescued & (plan.sum(axis=1) > 1)
    outcome = np.where(done, OK, np.where(rescued, BEST_ANSWER, np.where(refused, REFUSED, FAILED))).astype(np.int8)
    got = answered >= 0
    quality = np.zeros(n, dtype=np.int64)
    quality[got] = a.quality_units[np.flatnonzero(got), answered[got]]
    return Replayed(outcome, answered, quality, cost, calls, escalated)


OUTCOME_FIELDS = ("outcome", "answered", "quality_units", "cost_nano", "calls", "escalated")


def differences(engine: Replayed, vector: Replayed) -> dict[str, int]:
    """Per field of the replay, how many requests the sweep and the engine disagree on."""
    out = {}
    for name in OUTCOME_FIELDS:
        a, b = getattr(engine, name), getattr(vector, name)
        wrong = int((a != b).reshape(len(a), -1).any(axis=1).sum()) if a.shape == b.shape else len(a)
        if wrong:
            out[name] = wrong
    return out


def check_equal(policy_name: str, engine: Replayed, a: DecisionArrays) -> Replayed:
    """The sweep at the policy's own thresholds, proven equal to the engine's walk request by request;
    raises :class:`SweepMismatch` (naming what differs) otherwise."""
    vector = outcomes_at(a, first_rung(a, a.t1), a.t2)
    diff = differences(engine, vector)
    if diff:
        what = ", ".join(f"{k} on {v:,} of {len(engine.outcome):,} requests" for k, v in diff.items())
        raise SweepMismatch(f"policy {policy_name!r}: the vectorised sweep disagrees with the engine ({what}); "
                            f"refusing to report or calibrate from it")
    return vector


STAT_NAMES = ("quality_units", "cost_nano", "strong_calls", "escalated", "failed", "best_answer")


def stat_matrix(o: Replayed) -> np.ndarray:
    """(K, N) int64 per-request statistics: the fixed ones, then answered per rung, then calls per rung."""
    r_count = o.calls.shape[1]
    rows = [o.quality_units, o.cost_nano, o.calls[:, -1], o.escalated,
            (o.outcome == FAILED) | (o.outcome == REFUSED), o.outcome == BEST_ANSWER]
    rows += [o.answered == r for r in range(r_count)]
    rows += [o.calls[:, r] for r in range(r_count)]
    return np.vstack([np.asarray(x, dtype=np.int64) for x in rows])


@dataclass
class Sweep:
    t1: np.ndarray             # (T1,)
    t2: list[float | None]     # (T2,)
    totals: np.ndarray         # (T2, T1, K) int64 sums over requests
    n: int
    aliases: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        """(T2, T1) figure: quality, usd_per_1k, total_usd, strong_share, escalation_rate, failure_rate."""
        t = self.totals
        n = max(self.n, 1)
        k = {s: i for i, s in enumerate(STAT_NAMES)}
        if name == "quality":
            return t[..., k["quality_units"]] / 1e9 / n
        if name == "total_usd":
            return t[..., k["cost_nano"]] / 1e9
        if name == "usd_per_1k":
            return t[..., k["cost_nano"]] / 1e9 / n * 1000.0
        share = {"strong_share": "strong_calls", "escalation_rate": "escalated", "failure_rate": "failed",
                 "best_answer_rate": "best_answer"}
        return t[..., k[share[name]]] / n

    def answered_share(self) -> np.ndarray:
        """(T2, T1, R) share of requests answered by each rung."""
        r = len(self.aliases)
        return self.totals[..., len(STAT_NAMES):len(STAT_NAMES) + r] / max(self.n, 1)


def sweep(a: DecisionArrays, t1_grid: Sequence[float] = GRID, t2_grid: Sequence[float | None] | None = None,
          tick: Callable[[int], None] | None = None) -> Sweep:
    """Totals of every (t2, t1) grid point. ``t2_grid`` defaults to the grid when the policy has an
    answer_checker, else to the policy's (absent) checker threshold."""
    if t2_grid is None:
        t2_grid = list(GRID) if a.swept_count.any() else [a.t2]
    t1_arr = np.asarray(t1_grid, dtype=np.float64)
    order = np.argsort(a.score, kind="stable")
    n = a.score.size
    n_ge = n - np.searchsorted(a.score[order], t1_arr, side="left")   # requests with score >= t1
    lo, hi = a.base_first, a.base_first + 1
    totals = []
    for t2 in t2_grid:
        s_lo, s_hi = stat_matrix(outcomes_at(a, lo, t2)), stat_matrix(outcomes_at(a, hi, t2))
        diff = (s_hi - s_lo)[:, order[::-1]]                 # by descending score
        top = np.concatenate([np.zeros((diff.shape[0], 1), np.int64), np.cumsum(diff, axis=1)], axis=1)
        totals.append((s_lo.sum(axis=1)[:, None] + top[:, n_ge]).T)
        if tick is not None:
            tick(1)
    return Sweep(t1_arr, [None if t is None else float(t) for t in t2_grid], np.stack(totals), n, a.aliases)


def with_thresholds(policy: Policy, t1: float | None, t2: float | None) -> Policy:
    """The policy with routing.thresholds[0] = t1 and its swept answer_checker's threshold = t2
    (unvalidated copies: a sweep may cross the other thresholds; the engine just counts them)."""
    routing = policy.routing
    if t1 is not None:
        routing = routing.model_copy(update={"thresholds": (float(t1), *policy.routing.thresholds[1:])})
    escalation = policy.escalation
    swept = swept_checker(policy)
    if t2 is not None and swept is not None:
        key = spec_key(swept)

        def fix(specs: tuple) -> tuple:
            return tuple(s.model_copy(update={"params": tuple(sorted({**dict(s.params), "threshold": float(t2)}.items()))})
                         if s.name == CHECKER and spec_key(s) == key else s for s in specs)
        ladders = {m: tuple(r if r.checks is None else r.model_copy(update={"checks": fix(r.checks)}) for r in rungs)
                   for m, rungs in escalation.ladders.items()}
        escalation = escalation.model_copy(update={"checks": fix(escalation.checks), "ladders": ladders})
    return policy.model_copy(update={"routing": routing, "escalation": escalation})
