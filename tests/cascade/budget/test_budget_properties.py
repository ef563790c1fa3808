"""Property: after any sequence of reserve / commit (cost <= hold) / release / expire / clock moves,
every applicable cap's bucket holds spent + reserved <= limit, refusals and admissions are both
justified, and the ledger equals the money committed, to the nano-dollar."""
from __future__ import annotations

import uuid
from typing import Callable

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from cascade.budget import BudgetStore, MemoryBudgetStore, Reservation
from policies.budget import Cap, to_nano
from policies.errors import BudgetExceeded

T0 = 1_699_920_000.0
CAPS = [Cap("global", "minute", 0.05), Cap("user", "minute", 0.02), Cap("global", "total", 0.3)]
USERS = [None, "a", "b"]


def _nano_usage(store: BudgetStore, user: str | None, now: float) -> list[tuple[int, int, int]]:
    snap = store.snapshot(user=user, caps=CAPS, now=now)
    return [(to_nano(u.spent_usd), to_nano(u.reserved_usd), u.cap.limit_nano) for u in snap.usages]


class BudgetMachine(RuleBasedStateMachine):
    open_store: Callable[[], BudgetStore]

    @initialize()
    def start(self) -> None:
        self.store = type(self).open_store()
        self.now = T0
        self.held: list[Reservation] = []       # unexpired, neither committed nor released
        self.spent_nano = 0

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()

    @rule(user=st.sampled_from(USERS), milli=st.integers(0, 30), ttl=st.sampled_from([5, 30, 120]))
    def reserve(self, user: str | None, milli: int, ttl: int) -> None:
        amount = milli / 1000
        before = _nano_usage(self.store, user, self.now)
        fits = all(s + r + to_nano(amount) <= limit for s, r, limit in before)
        try:
            res = self.store.reserve(request_id=uuid.uuid4().hex, user=user, model="m",
                                     amount_usd=amount, caps=CAPS, ttl_s=ttl, now=self.now)
        except BudgetExceeded:
            assert not fits, "refused although every cap had room"
        else:
            assert fits, "admitted although a cap had no room"
            self.held.append(res)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), share=st.floats(0, 1))
    def commit(self, data: st.DataObject, share: float) -> None:
        res = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        cost = int(to_nano(res.amount_usd) * share)
        self.store.commit(res if share < 0.5 else res.id, cost / 1e9, now=self.now)
        self.spent_nano += to_nano(cost / 1e9)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.store.release(self.held.pop(data.draw(st.integers(0, len(self.held) - 1))))

    @rule(seconds=st.integers(0, 90))
    def tick(self, seconds: int) -> None:
        self.now += seconds
        self.held = [r for r in self.held if r.expires_at >= self.now]

    @rule()
    def expire(self) -> None:
        self.store.expire(now=self.now)
        assert self.store.open_reservations(now=self.now) == len(self.held)

    @invariant()
    def caps_hold(self) -> None:
        for user in USERS:
            for spent, reserved, limit in _nano_usage(self.store, user, self.now):
                assert spent + reserved <= limit

    @invariant()
    def ledger_matches(self) -> None:
        assert to_nano(self.store.total_spent()) == self.spent_nano
        assert sum(to_nano(e.cost_usd) for e in self.store.ledger()) == self.spent_nano
        assert self.store.open_reservations(now=self.now) == len(self.held)


@pytest.mark.parametrize("kind", ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_caps_are_never_overrun(kind: str, request: pytest.FixtureRequest, tmp_path) -> None:
    if kind == "memory":
        opener: Callable[[], BudgetStore] = MemoryBudgetStore
    elif kind == "sqlite":
        from cascade.budget.sqlite import SQLiteBudgetStore

        def opener() -> BudgetStore:
            return SQLiteBudgetStore(tmp_path / f"{uuid.uuid4().hex}.db")
    else:
        from cascade.budget.redis_store import RedisBudgetStore

        url = request.getfixturevalue("redis_server").url

        def opener() -> BudgetStore:
            return RedisBudgetStore(url, prefix=f"h{uuid.uuid4().hex[:12]}:")

    machine = type(f"BudgetMachine_{kind}", (BudgetMachine,), {"open_store": staticmethod(opener)})
    examples = 60 if kind == "memory" else 30
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=30, deadline=None, database=None))
