"""`memory://` keeps running totals and a bounded recent history, not every ledger entry."""
from __future__ import annotations

import tracemalloc

import pytest

from cascade.budget import MemoryBudgetStore, open_budget_store
from policies.budget import Cap, from_nano, to_nano
from policies.errors import ConfigError, InvalidRequestError

T0 = 1_699_920_000.0          # 2023-11-14T00:00:00Z
DAY = 86_400.0


def spend(store, i, usd, *, user="alice", caps=(), now=T0):
    res = store.reserve(request_id=f"r{i}", user=user, model="m", amount_usd=usd, caps=caps, now=now)
    return store.commit(res, usd, now=now)


def test_totals_are_exact_while_the_history_keeps_the_last_entries():
    store = MemoryBudgetStore(history=100)
    costs = [0.000001 * (i % 7 + 1) for i in range(5_000)]
    for i, usd in enumerate(costs):
        spend(store, i, usd, user=f"u{i % 3}")
    assert to_nano(store.total_spent()) == sum(to_nano(c) for c in costs)
    for u in range(3):
        assert to_nano(store.total_spent(user=f"u{u}")) == sum(to_nano(c) for c in costs[u::3])
    assert sum(to_nano(v) for v in store.spend_by_user().values()) == to_nano(store.total_spent())
    entries = store.ledger()
    assert len(entries) == 100 and [e.request_id for e in entries] == [f"r{i}" for i in range(4_900, 5_000)]
    assert store.ledger(request_id="r4999")[0].cost_usd == pytest.approx(costs[-1])
    assert store.ledger(request_id="r0") == []                 # older than the history


def test_a_double_commit_within_the_history_is_a_no_op():
    store = MemoryBudgetStore(history=10)
    res = store.reserve(request_id="r", user=None, model="m", amount_usd=0.5, caps=())
    first = store.commit(res, 0.25)
    assert store.commit(res, 0.40) == first and store.total_spent() == 0.25


def test_spend_of_windows_long_ended_is_dropped_and_caps_still_hold():
    store = MemoryBudgetStore()
    cap = Cap("user", "day", 1.0)
    for day in range(30):                                  # a month of days, 20 users a day
        now = T0 + day * DAY + 3_600
        for u in range(20):
            spend(store, f"{day}-{u}", 0.4, user=f"u{u}", caps=[cap], now=now)
    assert len(store._spent) <= 2 * 20                     # today's buckets and yesterday's (grace), no more
    now = T0 + 29 * DAY + 7_200
    (usage,) = store.snapshot(user="u0", caps=[cap], now=now).usages
    assert usage.spent_usd == pytest.approx(0.4)           # today's spend still counts against the cap
    spend(store, "x", 0.6, user="u0", caps=[cap], now=now)
    with pytest.raises(Exception, match="budget exceeded"):
        spend(store, "y", 0.01, user="u0", caps=[cap], now=now)
    assert store.total_spent(user="u0") == pytest.approx(30 * 0.4 + 0.6)


def test_memory_stays_flat_over_many_requests():
    store = MemoryBudgetStore(history=1_000)
    caps = [Cap("global", "day", 1e6), Cap("user", "day", 1e3)]
    tracemalloc.start()
    for i in range(2_000):                                  # warm: the history is full
        spend(store, i, 0.00001, user=f"u{i % 50}", caps=caps)
    before = tracemalloc.take_snapshot()
    for i in range(2_000, 22_000):
        spend(store, i, 0.00001, user=f"u{i % 50}", caps=caps)
    grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 50_000, f"{grown} bytes more after 20,000 requests"      # every entry kept: ~10 MB
    assert store.total_spent() == pytest.approx(from_nano(22_000 * to_nano(0.00001)))


def test_history_from_the_url():
    assert open_budget_store("memory://?history=5").history == 5
    assert open_budget_store("memory://?history=5").url == "memory://?history=5"
    assert open_budget_store("memory://").history == 10_000
    for bad in ("memory://?history=0", "memory://?history=x", "memory://?keep=5", "memory://somewhere"):
        with pytest.raises(ConfigError, match="memory://"):
            open_budget_store(bad)
    with pytest.raises(InvalidRequestError):
        MemoryBudgetStore(history=0)
