"""``/dashboard/data.json`` tallies the ledger without reading it whole on every poll: aggregate SQL over
the entries past the last read (SQLite), bounded reads of the stream (Redis). On large generated ledgers
the figures equal those of a full read, and a later read only looks at what the ledger gained."""
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import uuid

import pytest

from cascade.budget import open_budget_store
from cascade.server.ledger_spend import SpendTally, entries_spend
from policies.budget import Cap

MODELS = ("deepseek-v2", "gpt-4o", "text-embedding")
START = 1_767_225_600.0          # 2026-01-01 00:00 UTC: 40 days of entries follow


def rows(n: int, seed: int = 0) -> list[tuple]:
    """(reservation_id, request_id, user, model, cost_nano, at): users and days spread, some anonymous,
    some at the very edges of a UTC day."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        at = START + rng.randrange(40) * 86400 + rng.choice((0.0, 86399.999, rng.random() * 86400))
        user = None if rng.random() < 0.02 else f"user-{rng.randrange(300)}"
        out.append((f"r{seed}-{i}", f"q{seed}-{i}", user, rng.choice(MODELS), rng.randrange(1, 5_000_000), at))
    return out


def assert_same(got: dict, want: dict) -> None:
    for part in ("by_model", "by_user", "by_day"):
        key = {"by_model": "model", "by_user": "user", "by_day": "day"}[part]
        assert [r[key] for r in got[part]] == [r[key] for r in want[part]], part
        assert [r["usd"] for r in got[part]] == pytest.approx([r["usd"] for r in want[part]], rel=1e-12, abs=1e-15)
    assert [r["calls"] for r in got["by_model"]] == [r["calls"] for r in want["by_model"]]
    assert got["total_usd"] == pytest.approx(want["total_usd"], rel=1e-12)
    assert got["ledger"]["entries"] == want["ledger"]["entries"] and got["ledger"]["complete"]


def test_sqlite_aggregates_equal_the_full_read_and_later_reads_only_see_new_entries(tmp_path):
    store = open_budget_store(f"sqlite:///{tmp_path}/spend.db")
    store.total_spent()                                          # the schema
    conn = sqlite3.connect(tmp_path / "spend.db")
    conn.executemany("INSERT INTO ledger (reservation_id, request_id, user_id, model, cost_nano, at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows(200_000))
    conn.commit()
    conn.close()
    tally = SpendTally(store)
    assert_same(tally.read(), entries_spend(store.ledger()))
    last = store.spend_groups(0).last
    for i in range(3):                                           # three answers through the store's own API
        r = store.reserve(request_id=f"new{i}", user="late", model="gpt-4o", amount_usd=0.01, caps=[],
                          now=START + 45 * 86400)
        store.commit(r, 0.004, now=START + 45 * 86400)
    new = store.spend_groups(last).rows
    assert sum(g[4] for g in new) == 3                           # the next poll aggregates these three only
    doc = tally.read()
    assert_same(doc, entries_spend(store.ledger()))
    assert {"user": "late", "usd": pytest.approx(0.012)} in doc["by_user"] and doc["ledger"]["entries"] == 200_003
    store.close()


def test_sqlite_tally_starts_over_on_a_new_ledger_file(tmp_path):
    store = open_budget_store(f"sqlite:///{tmp_path}/spend.db")
    for i in range(3):
        store.commit(store.reserve(request_id=f"a{i}", user="u", model="gpt-4o", amount_usd=0.01, caps=[]), 0.01)
    tally = SpendTally(store)
    assert tally.read()["ledger"]["entries"] == 3
    store.close()
    (tmp_path / "spend.db").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"spend.db{suffix}").unlink(missing_ok=True)
    store = open_budget_store(f"sqlite:///{tmp_path}/spend.db")
    store.commit(store.reserve(request_id="b", user="v", model="deepseek-v2", amount_usd=0.01, caps=[]), 0.002)
    tally.store = store
    assert_same(tally.read(), entries_spend(store.ledger()))
    store.close()


@pytest.mark.redis
def test_redis_reads_are_bounded_and_catch_up_to_the_full_read(redis_server):
    from cascade.budget.redis_store import RedisBudgetStore
    prefix = f"d{uuid.uuid4().hex[:10]}:"
    store = RedisBudgetStore(redis_server.url, prefix=prefix)
    store.total_spent()
    client = store._client
    generated = rows(25_000, seed=1)
    for start in range(0, len(generated), 5000):                  # the ledger stream's own entry format
        pipe = client.pipeline(transaction=False)
        for rid, req, user, model, nano, at in generated[start:start + 5000]:
            meta = {"id": rid, "request_id": req, "user": user, "model": model, "buckets": []}
            pipe.xadd(prefix + "ledger", {"e": json.dumps({"meta": meta, "cost_nano": str(nano), "at": repr(at)})})
        pipe.execute()
    tally = SpendTally(store, max_entries=10_000)
    first = tally.read()
    assert first["ledger"] == {"entries": 10_000, "complete": False}
    assert tally.read()["ledger"] == {"entries": 20_000, "complete": False}
    assert_same(tally.read(), entries_spend(store.ledger()))
    r = store.reserve(request_id="late", user="late", model="gpt-4o", amount_usd=0.01,
                      caps=[Cap("global", "total", 100.0)])
    store.commit(r, 0.003)
    doc = tally.read()
    assert doc["ledger"]["entries"] == 25_001 and {"user": "late", "usd": pytest.approx(0.003)} in doc["by_user"]
    client.delete(prefix + "ledger")                              # the stream begun again
    store.commit(store.reserve(request_id="again", user="z", model="gpt-4o", amount_usd=0.01, caps=[]), 0.001)
    assert_same(tally.read(), entries_spend(store.ledger()))
    store.close()


@pytest.mark.redis
def test_redis_tally_starts_over_on_a_stream_lost_and_regrown_past_its_old_length(redis_server):
    from cascade.budget.redis_store import RedisBudgetStore
    store = RedisBudgetStore(redis_server.url, prefix=f"g{uuid.uuid4().hex[:10]}:")

    def spend(tag: str, n: int, user: str, usd: float) -> None:
        for i in range(n):
            store.commit(store.reserve(request_id=f"{tag}{i}", user=user, model="gpt-4o", amount_usd=0.01,
                                       caps=[]), usd)
    spend("a", 3, "old", 0.002)
    tally = SpendTally(store)
    assert tally.read()["ledger"]["entries"] == 3
    store._client.delete(store.prefix + "ledger")                # lost between two polls ...
    spend("b", 5, "new", 0.001)                                  # ... and regrown past its old length
    doc = tally.read()
    assert_same(doc, entries_spend(store.ledger()))
    assert doc["ledger"]["entries"] == 5 and [r["user"] for r in doc["by_user"]] == ["new"]
    spend("c", 2, "new", 0.001)                                  # the same stream goes on: only what it gained
    assert_same(tally.read(), entries_spend(store.ledger()))
    assert tally.read()["ledger"]["entries"] == 7
    store.close()


def _spend_sqlite(store, tag: str, n: int, user: str, usd: float) -> None:
    for i in range(n):
        store.commit(store.reserve(request_id=f"{tag}{i}", user=user, model="gpt-4o", amount_usd=0.01, caps=[]), usd)


@pytest.mark.parametrize("kept", [0, 2], ids=["another-ledger", "a-copy-of-its-first-2-entries"])
def test_sqlite_tally_starts_over_on_a_file_replaced_by_a_ledger_grown_past_the_old_one(tmp_path, kept):
    """Between two polls the ledger file is replaced (a move over it) by another ledger, or by a copy of its
    first ``kept`` entries that went on differently, which has grown past the old last sequence number."""
    path = tmp_path / "spend.db"
    store = open_budget_store(f"sqlite:///{path}")
    _spend_sqlite(store, "a", kept, "old", 0.002)
    if kept:
        store.close()
        shutil.copy(path, tmp_path / "other.db")
        store = open_budget_store(f"sqlite:///{path}")
    _spend_sqlite(store, "b", 3 - kept, "old", 0.002)
    tally = SpendTally(store)
    assert tally.read()["ledger"]["entries"] == 3
    other = open_budget_store(f"sqlite:///{tmp_path}/other.db")
    _spend_sqlite(other, "c", 5 - kept, "new", 0.001)
    other.close()
    store.close()
    os.replace(tmp_path / "other.db", path)                      # the old file's WAL was checkpointed on close
    doc = tally.read()
    assert_same(doc, entries_spend(store.ledger()))
    assert doc["ledger"]["entries"] == 5
    assert [r["user"] for r in doc["by_user"]] == (["new", "old"] if kept else ["new"])
    _spend_sqlite(store, "d", 2, "new", 0.001)                    # the new file goes on: only what it gained
    new = store.spend_groups(5).rows
    assert sum(g[4] for g in new) == 2
    assert_same(tally.read(), entries_spend(store.ledger()))
    assert tally.read()["ledger"]["entries"] == 7
    store.close()
