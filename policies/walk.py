"""The walk: which attempt of a Plan runs next, when an answer is accepted, what exhaustion returns.

Written once, as a pure state machine in tenacity's shape: the walk returns the next action and the
drivers do the I/O. Every driver follows it: the live executor (``acomplete`` / ``complete``), direct
streaming, the replay executor, and — vectorised — the replay sweep (proven equal by a property test)::

    walk = Walk(plan, policy)
    while True:
        action = walk.next()
        if isinstance(action, TryAttempt):   walk.record(<what happened to action.attempt>)
        elif isinstance(action, Replan):     walk.replan(<a fresh Plan from decide(), or None>)
        elif isinstance(action, Accept):     return the answer of attempt ``action.index``
        else:                                # Exhausted: raise (budget refusal or EscalationExhausted)

The rules, in one place:
- attempts run in plan order; the first *answered* attempt whose checks all pass is accepted
  (``outcome="ok"``); it is ``escalated`` when it is not the plan's first attempt;
- when every attempt has been walked: with ``on_exhausted: best_answer`` the answered attempt passing
  the most checks (then the strongest model; the earlier one on a tie) is accepted — never an empty
  answer
  (``outcome="best_answer"``, escalated when the plan had more than one attempt); otherwise exhausted;
- when nothing answered and a budget cap refused an attempt, ``at_cap: downgrade`` asks once for a
  fresh plan (:class:`Replan`); a plan with the same attempts, no plan, or a second refusal is an
  :class:`Exhausted` with ``refused=True`` (the driver raises the refusal itself);
- ``check_last_rung: false`` is applied by ``decide`` (the plan's last attempt carries no checks), so
  an answer of the last attempt is always accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from policies.plan import Attempt, Plan
from policies.schema import Policy

Status = Literal["answered", "failed", "skipped", "refused"]


@dataclass(frozen=True)
class AttemptOutcome:
    """What happened to one attempt: ``answered`` (with how many of its checks passed and failed),
    ``failed`` (the call failed), ``skipped`` (not called: circuit open, deadline) or ``refused``
    (a budget cap refused its reservation)."""

    status: Status
    passed: int = 0
    failed_checks: int = 0
    empty: bool = False          # an answer with no visible text: never the best answer

    @property
    def accepted(self) -> bool:
        return self.status == "answered" and self.failed_checks == 0


ANSWER_FAILED = AttemptOutcome("failed")
SKIPPED = AttemptOutcome("skipped")
REFUSED = AttemptOutcome("refused")


def answered(passed: int, failed: int, empty: bool = False) -> AttemptOutcome:
    return AttemptOutcome("answered", passed, failed, empty)


@dataclass(frozen=True)
class TryAttempt:
    index: int
    attempt: Attempt


@dataclass(frozen=True)
class Accept:
    index: int                                  # in the current plan
    attempt: Attempt
    outcome: Literal["ok", "best_answer"]
    escalated: bool


@dataclass(frozen=True)
class Replan:
    """Every planned attempt was refused by a budget cap: plan again with fresh budget figures."""


@dataclass(frozen=True)
class Exhausted:
    refused: bool                               # True: only budget refusals (raise the refusal)


Action = TryAttempt | Accept | Replan | Exhausted


@dataclass
class Walk:
    plan: Plan
    on_exhausted: str = "best_answer"
    downgrade: bool = False                     # budgets.at_cap == "downgrade"
    outcomes: list[AttemptOutcome] = field(default_factory=list)
    _replanned: bool = False
    _refused: bool = False                      # a refusal was met in the current plan
    _final: Action | None = None

    @classmethod
    def of(cls, plan: Plan, policy: Policy) -> "Walk":
        return cls(plan, policy.escalation.on_exhausted, policy.budgets.at_cap == "downgrade")

    def next(self) -> Action:
        if self._final is not None:
            return self._final
        if self.outcomes and self.outcomes[-1].accepted:
            i = len(self.outcomes) - 1
            return self._end(Accept(i, self.plan.attempts[i], "ok", escalated=i > 0))
        if len(self.outcomes) < len(self.plan.attempts):
            i = len(self.outcomes)
            return TryAttempt(i, self.plan.attempts[i])
        return self._exhausted()

    def record(self, outcome: AttemptOutcome) -> None:
        if self._final is not None or len(self.outcomes) >= len(self.plan.attempts):
            raise RuntimeError("walk: no attempt is pending (record() after the walk ended)")
        self._refused |= outcome.status == "refused"
        self.outcomes.append(outcome)

    def replan(self, plan: Plan | None) -> None:
        """The fresh plan asked for by :class:`Replan` (``None``: the engine found none)."""
        if self._replanned or not isinstance(self._final, Replan):
            raise RuntimeError("walk: replan() without a pending Replan")
        self._replanned, self._final = True, None
        if plan is None or plan.attempts == self.plan.attempts:
            self._final = Exhausted(refused=True)
            return
        self.plan, self.outcomes, self._refused = plan, [], False

    def _exhausted(self) -> Action:
        answers = [i for i, o in enumerate(self.outcomes) if o.status == "answered"]
        usable = [i for i in answers if not self.outcomes[i].empty]
        if usable and self.on_exhausted == "best_answer":
            strength = [a.strength for a in self.plan.attempts]
            best = max(usable, key=lambda i: (self.outcomes[i].passed, strength[i], -i))
            return self._end(Accept(best, self.plan.attempts[best], "best_answer",
                                    escalated=len(self.plan.attempts) > 1))
        if not answers and self._refused:
            if self.downgrade and not self._replanned and not self.plan.downgraded:
                self._final = Replan()
                return self._final
            return self._end(Exhausted(refused=True))
        return self._end(Exhausted(refused=False))

    def _end(self, action: Action) -> Action:
        self._final = action
        return action
