"""Concurrency: threads, asyncio tasks and processes racing for one cap never overspend it, and a
process killed mid-loop leaves a consistent ledger. Worker functions live at module level so that
`multiprocessing` (spawn) children can import them."""
from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time

import pytest

from cascade.budget import BudgetStore
from policies.budget import Cap, to_nano
from policies.errors import BudgetExceeded

CAP = Cap("global", "total", 1.0)
BIG = Cap("global", "total", 1_000.0)   # same bucket as CAP, a limit the crash loop never reaches
STEP = 0.01                       # 200 attempts at 0.01 under a 1.0 cap: exactly 100 can succeed


def _attempt(store: BudgetStore, request_id: str, user: str | None) -> bool:
    try:
        res = store.reserve(request_id=request_id, user=user, model="m", amount_usd=STEP, caps=[CAP])
    except BudgetExceeded:
        return False
    store.commit(res, STEP)
    return True


def _assert_ledger_consistent(store: BudgetStore, *, cap: Cap = CAP,
                              committed: int | None = None) -> None:
    entries = store.ledger()
    ledger_nano = sum(to_nano(e.cost_usd) for e in entries)
    assert ledger_nano == to_nano(store.total_spent())
    assert ledger_nano == to_nano(store.snapshot(user=None, caps=[cap]).usages[0].spent_usd)
    assert ledger_nano <= cap.limit_nano
    assert len({e.reservation_id for e in entries}) == len(entries)
    assert store.open_reservations() == 0
    if committed is not None:
        assert len(entries) == committed


def test_threads_never_overspend(store):
    start = threading.Barrier(200)
    outcomes: list[bool] = []

    def run(i: int) -> None:
        start.wait(timeout=30)
        outcomes.append(_attempt(store, f"t{i}", f"user{i % 7}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 200
    assert sum(outcomes) == 100
    _assert_ledger_consistent(store, committed=100)
    assert store.total_spent() == 1.0


async def test_asyncio_tasks_never_overspend(store):
    async def run(i: int) -> bool:
        try:
            res = await store.areserve(request_id=f"a{i}", user=None, model="m", amount_usd=STEP,
                                       caps=[CAP])
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)
        await store.acommit(res, STEP)
        return True

    outcomes = await asyncio.gather(*(run(i) for i in range(200)))
    assert sum(outcomes) == 100
    _assert_ledger_consistent(store, committed=100)


# ---- across processes (sqlite and redis) -------------------------------------------------------------

def _open(kind: str, location: str, prefix: str) -> BudgetStore:
    if kind == "sqlite":
        from cascade.budget.sqlite import SQLiteBudgetStore

        return SQLiteBudgetStore(location)
    from cascade.budget.redis_store import RedisBudgetStore

    return RedisBudgetStore(location, prefix=prefix)


def _hammer(kind: str, location: str, prefix: str, rounds: int, barrier, results) -> None:
    try:
        store = _open(kind, location, prefix)
        barrier.wait(timeout=60)
        won = sum(_attempt(store, f"p{os.getpid()}-{i}", f"w{i % 3}") for i in range(rounds))
        store.close()
    except BaseException as exc:  # reported to the parent, which fails with it at once
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    results.put(won)


def _first_open(path: str, barrier, results) -> None:
    """Open a store on a file nobody has opened yet, at the same moment as the other processes."""
    from cascade.budget.sqlite import SQLiteBudgetStore

    try:
        store = SQLiteBudgetStore(path)
        barrier.wait(timeout=60)
        won = sum(_attempt(store, f"f{os.getpid()}-{i}", None) for i in range(5))
        store.close()
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    results.put(won)


def _race(ctx, n: int, target, args: tuple) -> list[int]:
    """``n`` processes run ``target(*args, barrier, results)`` from one barrier; each one's result
    (a child's error fails the test at once, with its message)."""
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in range(n)]
    errors = [g for g in got if isinstance(g, str)]
    assert not errors, errors
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return got


def _spin(kind: str, location: str, prefix: str, started) -> None:
    """Reserve/commit tiny amounts until killed."""
    store = _open(kind, location, prefix)
    for i in range(1_000_000):
        res = store.reserve(request_id=f"s{os.getpid()}-{i}", user=None, model="m",
                            amount_usd=0.001, caps=[BIG], ttl_s=2.0)
        store.commit(res, 0.0001)
        started.set()


@pytest.fixture
def shared_location(shared_store_factory):
    factory = shared_store_factory
    return factory.kind, factory.location, factory.prefix, factory()


def test_processes_never_overspend(shared_location):
    kind, location, prefix, store = shared_location
    won = _race(multiprocessing.get_context("spawn"), 4, _hammer, (kind, location, prefix, 50))
    assert sum(won) == 100
    _assert_ledger_consistent(store, committed=100)


def test_processes_opening_a_fresh_sqlite_file_together(tmp_path):
    """Processes starting at once on a new ledger file: one creates it (WAL, schema), none sees
    'database is locked' — SQLite refuses some of those lock upgrades at once rather than waiting."""
    from cascade.budget.sqlite import SQLiteBudgetStore

    for trial in range(6):
        path = tmp_path / f"fresh{trial}" / "ledger.db"
        assert sum(_race(multiprocessing.get_context("fork"), 6, _first_open, (str(path),))) == 30
        store = SQLiteBudgetStore(path)
        assert len(store.ledger()) == 30
        store.close()


@pytest.mark.slow
def test_killed_process_leaves_a_consistent_ledger(shared_location):
    kind, location, prefix, store = shared_location
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(7)
    for _ in range(3):
        started = ctx.Event()
        proc = ctx.Process(target=_spin, args=(kind, location, prefix, started))
        proc.start()
        assert started.wait(timeout=60), "the worker never committed"
        time.sleep(rng.uniform(0.02, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL
    later = time.time() + 3.0                       # past every hold's 2 s TTL
    entries = store.ledger()
    assert entries and all(to_nano(e.cost_usd) == 100_000 for e in entries)
    assert to_nano(store.total_spent()) == 100_000 * len(entries)
    assert store.snapshot(user=None, caps=[BIG], now=later).usages[0].reserved_usd == 0.0
    assert store.open_reservations(now=later) == 0
    assert store.expire(now=later) <= 3             # at most one hold per killed process was left
    assert store.open_reservations() == 0
    _assert_ledger_consistent(store, cap=BIG)
    if kind == "sqlite":
        with sqlite3.connect(location) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT COUNT(*) FROM ledger l JOIN reservations r "
                                "ON r.id = l.reservation_id").fetchone() == (0,)
