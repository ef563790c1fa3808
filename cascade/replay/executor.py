"""The replay executor: the live executor's twin that looks outcomes up instead of calling models.

:func:`replay_engine` runs, per request, the real engine (``policies.engine.decide`` with the policy's
classifier score) and hands the Plan to :class:`ReplayExecutor`, which follows the same walk as the live executor
(:mod:`policies.walk`): each attempt's recorded answer (or a failed call when none was recorded) is
checked with the attempt's checks and the walk says what comes next (accept, next attempt, best answer,
exhausted). Every attempt made is paid for. Each request yields the same
:class:`cascade.trace.RouteTrace` the live router writes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from policies.engine import decide
from policies.errors import BudgetExceeded, CascadeError, EscalationExhausted, InvalidRequestError
from policies.plan import Attempt, Plan
from policies.request import Request
from policies.schema import Policy
from policies.walk import ANSWER_FAILED, Accept, AttemptOutcome, Exhausted, TryAttempt, Walk, answered

from cascade.replay.checks import UNEVALUABLE, CheckTable
from cascade.replay.data import ReplayData
from cascade.sessions import ReplayPins
from cascade.trace import AttemptRecord, RouteTrace

OK, BEST_ANSWER, FAILED, REFUSED = 0, 1, 2, 3
OUTCOMES = ("ok", "best_answer", "failed", "refused")


@dataclass
class Replayed:
    """Per-request results of one replay (arrays of length N; ``calls`` is (N, R))."""

    outcome: np.ndarray        # OK / BEST_ANSWER / FAILED / REFUSED
    answered: np.ndarray       # rung whose answer is returned, -1 when none
    quality_units: np.ndarray  # int64, units of 1e-9
    cost_nano: np.ndarray      # int64 nano-dollars of every attempt made
    calls: np.ndarray          # bool: the rung's model was called (a planned attempt was made)
    escalated: np.ndarray      # bool, as RouteTrace.escalated
    unevaluated: Counter = field(default_factory=Counter)   # check name -> outcomes counted as passed
    evaluated: Counter = field(default_factory=Counter)
    missing_calls: int = 0     # planned calls to a model with nothing recorded (traces)
    pin_floor: np.ndarray | None = None   # (N,) the rung each request's session pin started it at or above


class ReplayExecutor:
    def __init__(self, policy: Policy, data: ReplayData, checks: CheckTable) -> None:
        self.policy, self.data, self.checks = policy, data, checks
        # Python lists: the walk looks up scalars, which numpy arrays serve slowly
        self._available = data.available.tolist()
        self._missing = data.missing.tolist()
        self._cost_nano = data.cost_nano.tolist()
        self._cost_usd = data.cost_usd.tolist()
        self._completion = np.maximum(data.completion_tokens, 0).tolist()
        self._prompt_tokens = data.prompt_tokens.tolist()
        self.unevaluated: Counter = Counter()
        self.evaluated: Counter = Counter()
        self.missing_calls = 0
        self.called: list[int] = []

    def run(self, i: int, plan: Plan, trace: RouteTrace) -> tuple[int, int, int]:
        """Follow the walk of ``plan`` for request ``i``; fill ``trace``. Returns (outcome, answered rung,
        cost_nano); ``self.called`` lists the rungs called."""
        walk = Walk.of(plan, self.policy)
        self.called, cost = [], 0
        while True:
            action = walk.next()
            if isinstance(action, TryAttempt):
                outcome, spent = self._attempt(i, action.attempt, trace)
                cost += spent
                walk.record(outcome)
            elif isinstance(action, Accept):
                trace.accepted(action.attempt.model, action.outcome, action.escalated)
                return (OK if action.outcome == "ok" else BEST_ANSWER), action.attempt.rung, cost
            elif isinstance(action, Exhausted):
                trace.failed(f"EscalationExhausted: every attempt failed: {trace.attempts_summary()}")
                return FAILED, -1, cost
            else:                    # Replan: replay has no budget caps, so nothing is ever refused
                walk.replan(None)

    def _attempt(self, i: int, attempt: Attempt, trace: RouteTrace) -> tuple[AttemptOutcome, int]:
        """The recorded outcome of one attempt (and of its second opinion, if an agreement check asks
        for one): what the walk is told, and what was paid, in nano-dollars."""
        r = attempt.rung
        self.called.append(r)
        if not self._available[i][r]:
            self.missing_calls += self._missing[i][r]
            why = "no recorded outcome" if self._missing[i][r] else "the recorded call failed"
            consult = self._consulted(i, attempt, trace, answered=False, others_passed=False)
            trace.add(AttemptRecord(attempt.model, "error", attempt.reason, error=why))
            return ANSWER_FAILED, consult
        outcomes = self.checks.outcomes(attempt.checks, i, r)
        failed = []
        for o in outcomes:
            (self.unevaluated if o.reason == UNEVALUABLE else self.evaluated)[o.name] += 1
            if not o.passed:
                failed.append(o)
        others = all(o.passed for o in outcomes if o.name != "agreement")
        consult = self._consulted(i, attempt, trace, answered=True, others_passed=others)
        reason = attempt.reason if not failed else "; ".join(f"{o.name}: {o.reason}" for o in failed)
        trace.add(AttemptRecord(attempt.model, "check_failed" if failed else "ok", reason, self._prompt_tokens[i],
                                self._completion[i][r], self._cost_usd[i][r], 0.0, None, outcomes))
        text = self.data.responses[r][i] if self.data.responses is not None else None
        empty = text is not None and not text.strip()
        return answered(len(outcomes) - len(failed), len(failed), empty), self._cost_nano[i][r] + consult

    def _consulted(self, i: int, attempt: Attempt, trace: RouteTrace, *, answered: bool, others_passed: bool) -> int:
        """The second opinion's cost, traced as the live executor traces it."""
        nano = self.checks.consult_nano(attempt.checks, i, attempt.rung, answered, others_passed)
        if nano and attempt.consult is not None:
            trace.add(AttemptRecord(attempt.consult.model, "second_opinion", attempt.consult.reason,
                                    self._prompt_tokens[i], 0, nano / 1e9))
        return nano


def _decided(policy: Policy, text: str, tokens: int, score: float,
             plans: dict[tuple[str, int, float, str | None], Plan | CascadeError],
             start_at: str | None = None) -> Plan | CascadeError:
    """``decide(policy, Request(text=text, prompt_tokens=tokens), score, start_at=...)``, or the error it
    raises; computed once per distinct input (``start_at``: the request's session pin)."""
    key = (text, tokens, score, start_at)
    found = plans.get(key)
    if found is None:
        try:
            found = decide(policy, Request(text=text, prompt_tokens=tokens), score, start_at=start_at)
        except (InvalidRequestError, BudgetExceeded, EscalationExhausted) as exc:
            found = exc
        plans[key] = found
    return found


def replay_engine(policy: Policy, data: ReplayData, scores: np.ndarray, checks: CheckTable,
                  tick: Callable[[int], None] | None = None,
                  on_trace: Callable[[int, RouteTrace], None] | None = None) -> Replayed:
    """Replay every request through ``decide`` and the :class:`ReplayExecutor`."""
    n, r_count = data.available.shape
    executor = ReplayExecutor(policy, data, checks)
    outcome, answered, quality, cost = [REFUSED] * n, [-1] * n, [0] * n, [0] * n
    escalated = [False] * n
    called: list[list[int]] = [[] for _ in range(n)]
    units = data.quality_units.tolist()
    texts = data.prompts if data.prompts is not None else [""] * n
    tokens, score_list = data.plan_tokens.tolist(), np.asarray(scores, dtype=np.float64).tolist()
    pins = ReplayPins(policy.sessions, data.sessions, data.session_ts, data.aliases)   # session pinning, as live
    plans: dict[tuple[str, int, float, str | None], Plan | CascadeError] = {}   # decide() is pure: once per input
    for i in range(n):
        score = score_list[i]
        trace = RouteTrace(data.ids[i], policy.name, score, "text")
        plan = _decided(policy, texts[i], tokens[i], score, plans, pins.start(i))
        if isinstance(plan, CascadeError):
            trace.outcome, trace.error = "error", f"{type(plan).__name__}: {plan}"
        else:
            trace.plan_reason = plan.reason
            outcome[i], answered[i], cost[i] = executor.run(i, plan, trace)
            if answered[i] >= 0:
                quality[i] = units[i][answered[i]]
            called[i] = executor.called
            escalated[i] = trace.escalated
            pins.answered(i, answered[i])
        if on_trace is not None:
            on_trace(i, trace)
        if tick is not None and i % 4096 == 4095:
            tick(4096)
    if tick is not None:
        tick(n % 4096)
    calls = np.zeros((n, r_count), bool)
    rows = np.repeat(np.arange(n), [len(c) for c in called])
    calls[rows, np.fromiter((r for c in called for r in c), dtype=np.int64, count=rows.size)] = True
    return Replayed(np.array(outcome, np.int8), np.array(answered, np.int64), np.array(quality, np.int64),
                    np.array(cost, np.int64), calls, np.array(escalated, bool), executor.unevaluated,
                    executor.evaluated, executor.missing_calls, pins.floors(n))
