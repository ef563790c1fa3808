"""`SQLiteBudgetStore`: the embedded default, safe across threads and processes on one host.

Every write is one ``BEGIN IMMEDIATE`` transaction (WAL journal, ``busy_timeout``), so a reservation is
checked and recorded atomically against every other process using the same file, and a process killed
mid-transaction leaves nothing half-written. Each process opens its own connection lazily (a fork
re-opens); threads of one process share it behind a lock. ``synchronous=NORMAL``: consistent after any
crash; on power loss the last few transactions may roll back.

Schema (version 1, recorded in ``schema_version``)::

    reservations(id PK, request_id, user_id, model, amount_nano, expires_at, buckets JSON)
    reservation_buckets(bucket, reservation_id → reservations ON DELETE CASCADE)
    spend(bucket PK, spent_nano, ends_at)
    ledger(seq PK, reservation_id UNIQUE, request_id, user_id, model, cost_nano, at)
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from cascade.budget.base import (BudgetStoreBase, CapCheck, LedgerEntry, Reservation, ReservationNotFound, admit,
                                 clock, commit_inputs, new_reservation,
                                 reservation_id, reserve_inputs, resolve_caps, usage_snapshot)
from policies.budget import BudgetSnapshot, Cap, from_nano
from policies.errors import BudgetStoreUnavailable, ConfigError

SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE reservations (
        id TEXT PRIMARY KEY, request_id TEXT NOT NULL, user_id TEXT, model TEXT NOT NULL,
        amount_nano INTEGER NOT NULL, expires_at REAL NOT NULL, buckets TEXT NOT NULL)""",
    "CREATE INDEX reservations_expiry ON reservations(expires_at)",
    """CREATE TABLE reservation_buckets (
        bucket TEXT NOT NULL,
        reservation_id TEXT NOT NULL REFERENCES reservations(id) ON DELETE CASCADE,
        PRIMARY KEY (bucket, reservation_id)) WITHOUT ROWID""",
    "CREATE INDEX reservation_buckets_id ON reservation_buckets(reservation_id)",
    """CREATE TABLE spend (
        bucket TEXT PRIMARY KEY, spent_nano INTEGER NOT NULL, ends_at REAL) WITHOUT ROWID""",
    """CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, reservation_id TEXT NOT NULL UNIQUE,
        request_id TEXT NOT NULL, user_id TEXT, model TEXT NOT NULL,
        cost_nano INTEGER NOT NULL, at REAL NOT NULL)""",
    "CREATE INDEX ledger_request ON ledger(request_id)",
)
_RESERVED_SQL = """SELECT COALESCE(SUM(r.amount_nano), 0) FROM reservation_buckets b
                   JOIN reservations r ON r.id = b.reservation_id
                   WHERE b.bucket = ? AND r.expires_at >= ?"""
_LEDGER_COLUMNS = "reservation_id, request_id, user_id, model, cost_nano, at"
_GROUPS_SQL = """SELECT model, user_id, CAST(at AS INTEGER) / 86400, SUM(cost_nano), COUNT(*) FROM ledger
                 WHERE seq > ? AND seq <= ? GROUP BY 1, 2, 3"""


class SQLiteBudgetStore(BudgetStoreBase):
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path).expanduser().absolute()
        self.url = f"sqlite:///{self.path}"
        self._busy_ms = int(busy_timeout_s * 1000)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    # ---- reserve / commit / release ----------------------------------------------------------------

    def reserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                caps: Sequence[Cap], ttl_s: float = 300.0,
                now: float | None = None) -> Reservation:
        amount, ttl, now, checks = reserve_inputs(amount_usd, ttl_s, now, caps, user)
        with self._transaction(immediate=True) as conn:
            conn.execute("DELETE FROM reservations WHERE expires_at < ?", (now,))
            spent, reserved = self._usage(conn, checks, now)
            admit(checks, spent, reserved, amount_nano=amount, user=user, now=now)
            res = new_reservation(request_id=request_id, user=user, model=model,
                                  amount_nano=amount, expires_at=now + ttl, checks=checks)
            conn.execute("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (res.id, request_id, res.user, model, amount, res.expires_at,
                          json.dumps(res.buckets)))
            conn.executemany("INSERT INTO reservation_buckets VALUES (?, ?)",
                             [(bucket, res.id) for bucket, _ in res.buckets])
        return res

    def commit(self, reservation: Reservation | str, cost_usd: float, *,
               now: float | None = None) -> LedgerEntry:
        rid, cost, now = commit_inputs(reservation, cost_usd, now)
        with self._transaction(immediate=True) as conn:
            row = conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledger WHERE reservation_id = ?",
                               (rid,)).fetchone()
            if row is not None:
                return _entry(row)
            held = conn.execute("SELECT request_id, user_id, model, buckets FROM reservations "
                                "WHERE id = ?", (rid,)).fetchone()
            if held is not None:
                request_id, user, model, buckets_json = held
                buckets = [tuple(b) for b in json.loads(buckets_json)]
                conn.execute("DELETE FROM reservations WHERE id = ?", (rid,))
            elif isinstance(reservation, str):
                raise ReservationNotFound(f"unknown reservation {rid!r} (released, expired or never made)")
            else:
                request_id, user, model = reservation.request_id, reservation.user, reservation.model
                buckets = list(reservation.buckets)
            conn.executemany(
                "INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT(bucket) "
                "DO UPDATE SET spent_nano = spent_nano + excluded.spent_nano",
                [(bucket, cost, ends_at) for bucket, ends_at in buckets])
            conn.execute(f"INSERT INTO ledger ({_LEDGER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                         (rid, request_id, user, model, cost, now))
        return LedgerEntry(rid, request_id, user, model, from_nano(cost), now)

    def release(self, reservation: Reservation | str) -> None:
        with self._transaction(immediate=True) as conn:
            conn.execute("DELETE FROM reservations WHERE id = ?", (reservation_id(reservation),))

    # ---- reading ------------------------------------------------------------------------------------

    def snapshot(self, *, user: str | None, caps: Sequence[Cap],
                 now: float | None = None) -> BudgetSnapshot:
        now = clock(now)
        checks = resolve_caps(caps, user, now)
        with self._transaction() as conn:
            spent, reserved = self._usage(conn, checks, now)
        return usage_snapshot(checks, spent, reserved)

    def open_reservations(self, now: float | None = None) -> int:
        with self._transaction() as conn:
            return conn.execute("SELECT COUNT(*) FROM reservations WHERE expires_at >= ?",
                                (clock(now),)).fetchone()[0]

    def expire(self, now: float | None = None) -> int:
        with self._transaction(immediate=True) as conn:
            return conn.execute("DELETE FROM reservations WHERE expires_at < ?",
                                (clock(now),)).rowcount

    def total_spent(self, *, user: str | None = None) -> float:
        sql, params = "SELECT COALESCE(SUM(cost_nano), 0) FROM ledger", ()
        if user is not None:
            sql, params = sql + " WHERE user_id = ?", (user,)
        with self._transaction() as conn:
            return from_nano(conn.execute(sql, params).fetchone()[0])

    def spend_by_user(self) -> dict[str | None, float]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT user_id, SUM(cost_nano) FROM ledger GROUP BY user_id").fetchall()
        return {user: from_nano(total) for user, total in rows}

    def ledger(self, *, request_id: str | None = None) -> list[LedgerEntry]:
        sql, params = f"SELECT {_LEDGER_COLUMNS} FROM ledger", ()
        if request_id is not None:
            sql, params = sql + " WHERE request_id = ?", (request_id,)
        with self._transaction() as conn:
            return [_entry(row) for row in conn.execute(sql + " ORDER BY seq", params).fetchall()]

    def spend_groups(self, after: int = 0, *, after_id: str | None = None) -> SpendGroups:
        """(model, user, UTC day number, spent nano-dollars, entries) of the ledger entries after sequence
        number ``after``, the last sequence number read and its entry's reservation id: aggregate SQL on a
        read connection of its own (WAL: it neither waits for this process's reservations nor holds them
        up). Sequence numbers only grow, so a reader can add each call's new groups to what it has (the
        dashboard does). Given ``after_id`` (the ``last_id`` of the previous call), a file whose entry
        ``after`` is not that one any more — replaced by another ledger, even one grown past ``after`` — is
        read from its start, in the same transaction, and ``restarted`` says so."""
        if not self.path.exists():
            return SpendGroups([], 0, None, after > 0)
        try:
            conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None,
                                   timeout=self._busy_ms / 1000)
            try:
                conn.execute("BEGIN")
                got = _read_spend_groups(conn, after, after_id)
                conn.execute("COMMIT")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise BudgetStoreUnavailable(f"sqlite budget store {self.url}: {exc}") from exc
        return got

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # ---- internals ----------------------------------------------------------------------------------

    @staticmethod
    def _usage(conn: sqlite3.Connection, checks: Sequence[CapCheck],
               now: float) -> tuple[list[int], list[int]]:
        spent, reserved = [], []
        for check in checks:
            row = conn.execute("SELECT spent_nano FROM spend WHERE bucket = ?", (check.bucket,)).fetchone()
            spent.append(row[0] if row else 0)
            reserved.append(conn.execute(_RESERVED_SQL, (check.bucket, now)).fetchone()[0])
        return spent, reserved

    @contextmanager
    def _transaction(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction under the process lock; sqlite failures become BudgetStoreUnavailable."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                raise BudgetStoreUnavailable(f"sqlite budget store {self.url}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn = None  # a connection inherited through fork is never used (nor closed)
            new = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._busy_ms / 1000, isolation_level=None,
                                   check_same_thread=False)
            try:
                _prepare_with_retry(conn, self._busy_ms)
            except BaseException:
                conn.close()
                raise
            if new:
                from cascade.disk import announce_created
                announce_created(self.path, "the budget ledger", "set CASCADE_BUDGET_STORE or budget_store= to "
                                 "keep it elsewhere")
            self._conn, self._pid = conn, os.getpid()
        return self._conn


def _prepare_with_retry(conn: sqlite3.Connection, busy_ms: int) -> None:
    """`_prepare`, retried while another process holds the lock it needs.

    SQLite answers SQLITE_BUSY at once, without waiting out ``busy_timeout``, when waiting could
    deadlock: several processes opening a fresh file together each hold a shared lock while switching
    it to WAL or creating the schema. One of them wins; the others back off and try again here, for as
    long as the busy timeout allows.
    """
    deadline = time.monotonic() + busy_ms / 1000
    delay = 0.002
    while True:
        try:
            _prepare(conn, busy_ms)
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.1)


def _prepare(conn: sqlite3.Connection, busy_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is None:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise ConfigError(f"budget database schema v{version} is newer than this cascade "
                              f"(v{SCHEMA_VERSION}); upgrade deepseek-cascade")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SpendGroups(NamedTuple):
    """What :meth:`SQLiteBudgetStore.spend_groups` read."""
    rows: list[tuple]           # (model, user, day number, nano-dollars, entries) past the sequence number asked
    last: int                   # the last sequence number read (0: an empty ledger)
    last_id: str | None         # its entry's reservation id
    restarted: bool             # the entry asked to start after is not there any more: rows are from the start


def _read_spend_groups(conn: sqlite3.Connection, after: int, after_id: str | None) -> SpendGroups:
    last, last_id = conn.execute("SELECT seq, reservation_id FROM ledger ORDER BY seq DESC LIMIT 1").fetchone() \
        or (0, None)
    restarted = False
    if after > 0 and after_id is not None:
        row = conn.execute("SELECT reservation_id FROM ledger WHERE seq = ?", (after,)).fetchone()
        restarted = row is None or row[0] != after_id
    elif after > last:
        restarted = True
    if restarted:
        after = 0
    rows = conn.execute(_GROUPS_SQL, (after, last)).fetchall() if last > after else []
    return SpendGroups(rows, last, last_id, restarted)


def _entry(row: tuple) -> LedgerEntry:
    reservation_id_, request_id, user, model, cost_nano, at = row
    return LedgerEntry(reservation_id_, request_id, user, model, from_nano(cost_nano), at)
