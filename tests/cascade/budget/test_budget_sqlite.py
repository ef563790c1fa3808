"""SQLite-specific behaviour: schema and pragmas, persistence, lock timeouts, unusable paths."""
from __future__ import annotations

import sqlite3

import pytest

from cascade.budget.sqlite import SCHEMA_VERSION, SQLiteBudgetStore
from policies.budget import Cap
from policies.errors import BudgetStoreUnavailable, ConfigError

CAP = Cap("global", "total", 1.0)


def _reserve(store, amount=0.1):
    return store.reserve(request_id="r", user=None, model="m", amount_usd=amount, caps=[CAP])


def test_schema_version_and_wal(tmp_path):
    path = tmp_path / "b.db"
    SQLiteBudgetStore(path).total_spent()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "reservations", "reservation_buckets", "spend", "ledger"} <= tables


def test_reopening_keeps_the_ledger_and_open_holds(tmp_path):
    first = SQLiteBudgetStore(tmp_path / "b.db")
    first.commit(_reserve(first), 0.25)
    held = _reserve(first, 0.5)
    first.close()
    second = SQLiteBudgetStore(tmp_path / "b.db")
    assert second.total_spent() == 0.25 and second.open_reservations() == 1
    second.commit(held.id, 0.5)
    assert second.snapshot(user=None, caps=[CAP]).usages[0].spent_usd == 0.75
    second.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "b.db"
    SQLiteBudgetStore(path).total_spent()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer"):
        SQLiteBudgetStore(path).total_spent()


def test_a_held_write_lock_times_out_as_unavailable(tmp_path):
    path = tmp_path / "b.db"
    store = SQLiteBudgetStore(path, busy_timeout_s=0.1)
    store.total_spent()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BudgetStoreUnavailable, match="locked"):
            _reserve(store)
        assert store.total_spent() == 0.0          # WAL: readers are not blocked by the writer
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _reserve(store)
    assert store.open_reservations() == 1
    store.close()


def test_an_unusable_path_is_unavailable(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    store = SQLiteBudgetStore(tmp_path / "file" / "b.db")
    with pytest.raises(BudgetStoreUnavailable, match="sqlite"):
        store.total_spent()


def test_a_refused_reservation_leaves_no_row(tmp_path):
    store = SQLiteBudgetStore(tmp_path / "b.db")
    _reserve(store, 1.0)
    with pytest.raises(Exception):
        _reserve(store, 0.5)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM reservations").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM reservation_buckets").fetchone() == (1,)
    store.close()
