"""The walk (policies.walk): the one place that decides next attempt / accept / exhausted."""
from __future__ import annotations

import pytest

from policies.plan import Attempt, Plan
from policies.walk import (ANSWER_FAILED, REFUSED, SKIPPED, Accept, Exhausted, Replan, TryAttempt, Walk,
                           answered)


def plan(*strengths: int, downgraded: bool = False) -> Plan:
    attempts = tuple(Attempt(model=f"m{i}", litellm_model=f"openai/m{i}", params=(("max_tokens", 10),), checks=(),
                             est_cost_usd=0.0, reason="", rung=i, strength=s) for i, s in enumerate(strengths))
    return Plan(attempts, 0.5, "text", "", downgraded=downgraded)


def walk_through(walk: Walk, outcomes) -> object:
    """Feed ``outcomes`` one per TryAttempt; return the final action."""
    fed = iter(outcomes)
    while True:
        action = walk.next()
        if not isinstance(action, TryAttempt):
            return action
        walk.record(next(fed))


OK, FAIL1 = answered(2, 0), answered(1, 1)

CASES = [  # strengths, on_exhausted, outcomes, expected (kind, index, outcome, escalated | refused)
    ((1, 10), "best_answer", [OK], ("accept", 0, "ok", False)),
    ((1, 10), "best_answer", [FAIL1, OK], ("accept", 1, "ok", True)),
    ((1, 10), "best_answer", [ANSWER_FAILED, OK], ("accept", 1, "ok", True)),
    ((1, 10), "best_answer", [SKIPPED, OK], ("accept", 1, "ok", True)),
    ((1, 10), "best_answer", [FAIL1, answered(0, 2)], ("accept", 0, "best_answer", True)),
    ((1, 10), "best_answer", [FAIL1, FAIL1], ("accept", 1, "best_answer", True)),        # tie: stronger
    ((10, 10), "best_answer", [FAIL1, FAIL1], ("accept", 0, "best_answer", True)),       # full tie: earlier
    ((1,), "best_answer", [FAIL1], ("accept", 0, "best_answer", False)),
    ((1, 10), "raise", [FAIL1, FAIL1], ("exhausted", False)),
    ((1, 10), "best_answer", [ANSWER_FAILED, ANSWER_FAILED], ("exhausted", False)),
    ((1, 10), "best_answer", [REFUSED, ANSWER_FAILED], ("exhausted", True)),
    ((1, 10), "raise", [REFUSED, REFUSED], ("exhausted", True)),
    ((1, 10), "best_answer", [REFUSED, FAIL1], ("accept", 1, "best_answer", True)),
    ((1, 10), "best_answer", [answered(3, 1, empty=True), FAIL1], ("accept", 1, "best_answer", True)),
    ((1, 10), "best_answer", [answered(1, 1, empty=True), ANSWER_FAILED], ("exhausted", False)),   # never empty
]


@pytest.mark.parametrize("strengths, on_exhausted, outcomes, expected", CASES)
def test_walk_table(strengths, on_exhausted, outcomes, expected):
    end = walk_through(Walk(plan(*strengths), on_exhausted), outcomes)
    if expected[0] == "accept":
        assert isinstance(end, Accept)
        assert (end.index, end.outcome, end.escalated) == expected[1:]
        assert end.attempt.model == f"m{end.index}"
    else:
        assert end == Exhausted(refused=expected[1])


def test_the_walk_stops_at_the_first_accepted_answer():
    walk = Walk(plan(1, 5, 10))
    assert walk.next() == TryAttempt(0, walk.plan.attempts[0])
    walk.record(OK)
    assert isinstance(walk.next(), Accept) and walk.next() is walk.next()     # the end is stable
    with pytest.raises(RuntimeError, match="no attempt is pending"):
        walk.record(OK)


def test_downgrade_asks_once_for_a_fresh_plan_and_walks_it():
    walk = Walk(plan(1, 10), "best_answer", downgrade=True)
    assert isinstance(walk_through(walk, [REFUSED, REFUSED]), Replan)
    walk.replan(plan(1))
    end = walk_through(walk, [OK])
    assert isinstance(end, Accept) and (end.index, end.escalated) == (0, False)


@pytest.mark.parametrize("fresh", [None, "same"])
def test_no_fresh_plan_or_the_same_plan_ends_refused(fresh):
    first = plan(1, 10)
    walk = Walk(first, "best_answer", downgrade=True)
    walk_through(walk, [REFUSED, REFUSED])
    walk.replan(first if fresh == "same" else None)
    assert walk.next() == Exhausted(refused=True)


def test_a_second_refusal_after_the_replan_is_final():
    walk = Walk(plan(1, 10), "best_answer", downgrade=True)
    walk_through(walk, [REFUSED, REFUSED])
    walk.replan(plan(1))
    assert walk_through(walk, [REFUSED]) == Exhausted(refused=True)


def test_no_replan_without_downgrade_or_for_a_downgraded_plan():
    assert walk_through(Walk(plan(1, 10), downgrade=False), [REFUSED, REFUSED]) == Exhausted(refused=True)
    assert walk_through(Walk(plan(1, downgraded=True), downgrade=True), [REFUSED]) == Exhausted(refused=True)
    with pytest.raises(RuntimeError, match="without a pending Replan"):
        Walk(plan(1)).replan(plan(1))
