"""Crash safety: a Router worker SIGKILLed at random moments, 10 times, leaves a consistent ledger.

A worker process (``sigkill_worker.py``, forked from a zygote that paid litellm's import once) runs 8
concurrent request loops through ``Router.acomplete`` against a ``FakeProviderProcess`` whose answers
take 50-300 ms (so kills land mid-request, mid-reservation and mid-commit), on a shared SQLite ledger or a
Redis one. The test kills it with SIGKILL at a random moment, checks the ledger, and restarts it; ten
times. After each kill:

* the store is intact: SQLite ``PRAGMA integrity_check`` is ``ok`` and its tables agree (no bucket row
  without its reservation, no reservation left for a committed id, the spend buckets equal the ledger);
  Redis' totals, per-user totals, spend buckets and double-commit guards agree with its ledger stream;
* every ledger entry is well-formed (ids, a catalog model, a finite non-negative whole nano-dollar cost);
* ``total_spent()`` == the sum of the ledger entries, to the nano-dollar;
* every request the worker saw answered before it died is in the ledger at exactly the cost its trace
  reported (money acknowledged is never lost) — at least that cost when one of its calls was given up at
  its timeout (a late answer is recorded after the request returned); the ledger never exceeds what the
  provider served;
* spend never decreases and no earlier ledger entry disappears;
* the dead worker's reservations are all gone once their TTL (1.5 s) has passed.
Finally a restarted worker runs 24 requests to the end: the ledger grows by exactly what it reports.
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from policies.budget import Cap, to_nano
from tests.harness.fake_provider import FakeProviderProcess

from .sigkill_worker import GLOBAL_CAP_USD, USER_CAP_USD, open_store

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("sigkill_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TTL_S = 1.5
KILLS = 10
CONCURRENCY = 8
CATALOG = {"deepseek-v2", "gpt-4o"}
PROVIDER_SCRIPT = {"fallback": {"default": {"kind": "answer", "latency": [0.05, 0.3]},
                                "mix": {"500": 0.05, "429": 0.05, "empty": 0.05}, "seed": 7}}
PRICES_NANO = {"deepseek-chat": (140, 280), "gpt-4o": (2500, 10000)}   # per token, the default policy's


class Zygote:
    """The fork server of sigkill_worker.py: one litellm import for every worker of the test."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            self.close()
            raise RuntimeError(f"sigkill zygote did not start: {line!r}")

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def spawn(self, **cfg: Any) -> int:
        answer = self._ask("spawn " + json.dumps(cfg))
        assert answer.startswith("PID "), answer
        return int(answer.split()[1])

    def reap(self, pid: int) -> str:
        answer = self._ask(f"reap {pid}")
        assert answer.startswith(f"EXIT {pid} "), answer
        return answer.split(" ", 2)[2]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProviderProcess]:
    with FakeProviderProcess(PROVIDER_SCRIPT) as server:
        yield server


# ── reading a journal and checking a ledger ─────────────────────────────────────────────────

def read_journal(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line]


def journal_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def check_entries(entries: list[Any]) -> dict[str, int]:
    """Every entry well-formed; returns request_id -> nano-dollars."""
    by_request: dict[str, int] = {}
    ids = set()
    for e in entries:
        assert isinstance(e.reservation_id, str) and len(e.reservation_id) == 32, e
        assert e.reservation_id not in ids, f"reservation {e.reservation_id} committed twice"
        ids.add(e.reservation_id)
        assert isinstance(e.request_id, str) and len(e.request_id) == 32, e
        assert e.model in CATALOG, e
        assert e.user is None or e.user.startswith("user-"), e
        assert isinstance(e.cost_usd, float) and math.isfinite(e.cost_usd) and e.cost_usd >= 0, e
        assert abs(e.cost_usd * 1e9 - round(e.cost_usd * 1e9)) < 1e-3, f"not whole nano-dollars: {e}"
        assert math.isfinite(e.at) and abs(e.at - time.time()) < 3600, e
        by_request[e.request_id] = by_request.get(e.request_id, 0) + to_nano(e.cost_usd)
    return by_request


def check_sqlite_file(path: Path) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        bad = conn.execute("SELECT COUNT(*) FROM ledger WHERE typeof(cost_nano) != 'integer' OR cost_nano < 0 "
                           "OR typeof(at) != 'real' OR length(reservation_id) != 32").fetchone()[0]
        assert bad == 0
        orphans = conn.execute("SELECT COUNT(*) FROM reservation_buckets b LEFT JOIN reservations r "
                               "ON r.id = b.reservation_id WHERE r.id IS NULL").fetchone()[0]
        assert orphans == 0, "bucket rows without their reservation"
        held_and_spent = conn.execute("SELECT COUNT(*) FROM reservations r JOIN ledger l "
                                      "ON l.reservation_id = r.id").fetchone()[0]
        assert held_and_spent == 0, "a committed reservation is still held"
        total = conn.execute("SELECT COALESCE(SUM(cost_nano), 0) FROM ledger").fetchone()[0]
        bucket = conn.execute("SELECT spent_nano FROM spend WHERE bucket = 'global:total:total'").fetchone()
        assert (bucket[0] if bucket else 0) == total, "global spend bucket != ledger"
        for user, spent in conn.execute("SELECT user_id, SUM(cost_nano) FROM ledger GROUP BY user_id"):
            row = conn.execute("SELECT spent_nano FROM spend WHERE bucket = ?", (f"user:total:total:{user}",)).fetchone()
            assert row is not None and row[0] == spent, f"user {user} spend bucket != ledger"
    finally:
        conn.close()


def check_redis_keys(url: str, prefix: str, entries: list[Any]) -> None:
    import redis
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        total = sum(to_nano(e.cost_usd) for e in entries)
        assert int(r.get(prefix + "total") or 0) == total, "redis total != ledger stream"
        by_user = {k: int(v) for k, v in r.hgetall(prefix + "by_user").items()}
        assert sum(by_user.values()) == total
        assert int(r.get(prefix + "spend:global:total:total") or 0) == total, "global spend bucket != ledger"
        for user in {e.user for e in entries}:
            spent = sum(to_nano(e.cost_usd) for e in entries if e.user == user)
            assert by_user.get(f"u:{user}") == spent
            assert int(r.get(f"{prefix}spend:user:total:total:{user}") or 0) == spent
        for e in entries:
            assert r.exists(prefix + "done:" + e.reservation_id), f"no double-commit guard for {e.reservation_id}"
            assert not r.exists(prefix + "r:" + e.reservation_id), "a committed reservation is still held"
    finally:
        r.close()


def provider_nano(server: FakeProviderProcess) -> tuple[int, int]:
    models = server.tally()["models"]
    cost = sum(m["prompt_tokens"] * PRICES_NANO[name][0] + m["completion_tokens"] * PRICES_NANO[name][1]
               for name, m in models.items())
    return cost, sum(m["completions"] for m in models.values())


# ── the test ────────────────────────────────────────────────────────────────────────────────

@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        yield {"kind": "sqlite", "url": f"sqlite:///{path}", "prefix": "", "path": path}
    else:
        server = request.getfixturevalue("redis_server")
        yield {"kind": "redis", "url": server.url, "prefix": f"sk{uuid.uuid4().hex[:10]}:", "path": None}


def test_sigkill_ten_times_leaves_a_consistent_ledger(zygote, provider, shared_store, tmp_path):
    rng = random.Random(20240611)
    store = open_store(shared_store["url"], shared_store["prefix"])
    provider_before, completions_before = provider_nano(provider)
    base = dict(store=shared_store["url"], prefix=shared_store["prefix"], provider=provider.url, ttl=TTL_S,
                concurrency=CONCURRENCY)
    prev_total, prev_ids, acknowledged = 0, set(), {}
    open_at_kill = []
    try:
        for k in range(KILLS):
            journal = tmp_path / f"journal-{k}.txt"
            pid = zygote.spawn(**base, journal=str(journal), n=None, seed=k)
            first = rng.randint(1, 4)
            _wait_for(lambda: journal_lines(journal) >= first, 60, journal)
            time.sleep(rng.uniform(0.0, 0.3))
            os.kill(pid, signal.SIGKILL)
            assert zygote.reap(pid) == f"signal {signal.SIGKILL}"
            killed_at = time.time()

            # the store is intact and the ledger adds up
            if shared_store["kind"] == "sqlite":
                check_sqlite_file(shared_store["path"])
            entries = store.ledger()
            by_request = check_entries(entries)
            if shared_store["kind"] == "redis":
                check_redis_keys(shared_store["url"], shared_store["prefix"], entries)
            total = sum(by_request.values())
            assert to_nano(store.total_spent()) == total
            snapshot = store.snapshot(user=None, caps=[Cap("global", "total", GLOBAL_CAP_USD)])
            assert to_nano(snapshot.usages[0].spent_usd) == total

            # nothing acknowledged is lost; spend never decreases; no entry disappears
            for line in read_journal(journal):
                assert line[0] != "untyped", f"an untyped exception escaped the Router: {line}"
                if line[1] != "-":
                    acknowledged[line[1]] = (int(line[2]), int(line[3]))
            for rid, (paid, late) in acknowledged.items():
                got = by_request.get(rid, 0)
                assert got == paid or (late and got > paid), f"request {rid}: ledger {got} != {paid} paid ({late} late)"
            assert total >= prev_total
            ids = {e.reservation_id for e in entries}
            assert prev_ids <= ids
            served, completions = provider_nano(provider)
            assert total <= served - provider_before, "the ledger holds more than the provider served"
            assert len(entries) >= completions - completions_before - (k + 1) * CONCURRENCY

            # the dead worker's holds expire after their TTL, and stop counting against the caps
            open_at_kill.append(store.open_reservations(now=killed_at))
            later = killed_at + TTL_S + 0.01
            assert store.open_reservations(now=later) == 0
            assert store.snapshot(user=None, caps=[Cap("global", "total", GLOBAL_CAP_USD)],
                                  now=later).usages[0].reserved_usd == 0
            prev_total, prev_ids = total, ids
            print(f"kill {k + 1}: {journal_lines(journal)} requests finished, {open_at_kill[-1]} reservations open "
                  f"at the kill, ledger {len(entries)} entries = {total} n$, provider served {completions - completions_before}")
        assert sum(open_at_kill) > 0, f"no kill landed mid-request: open reservations at the kills {open_at_kill}"

        # the holds really expire (real time), and a restarted worker's spend adds up exactly
        time.sleep(max(0.0, killed_at + TTL_S + 0.05 - time.time()))
        assert store.open_reservations() == 0
        store.expire()
        journal = tmp_path / "journal-final.txt"
        pid = zygote.spawn(**base, journal=str(journal), n=24, seed=99)
        _wait_for(lambda: journal_lines(journal) >= 24, 90, journal)
        assert zygote.reap(pid) == "code 0"
        lines = read_journal(journal)
        assert len(lines) == 24 and all(line[0] in ("ok", "err") for line in lines), lines
        entries = store.ledger()
        by_request = check_entries(entries)
        new_spend = sum(int(line[2]) for line in lines)
        if any(int(line[3]) for line in lines):           # late answers recorded after their request returned
            assert sum(by_request.values()) >= prev_total + new_spend
        else:
            assert sum(by_request.values()) == prev_total + new_spend
        assert to_nano(store.total_spent()) == sum(by_request.values())
        assert new_spend > 0
        assert store.open_reservations() == 0
        if shared_store["kind"] == "sqlite":
            check_sqlite_file(shared_store["path"])
        else:
            check_redis_keys(shared_store["url"], shared_store["prefix"], entries)
    finally:
        store.close()


def _wait_for(cond: Any, timeout_s: float, journal: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            log = Path(str(journal) + ".log")
            raise AssertionError(f"worker made no progress in {timeout_s} s; its stderr:\n"
                                 f"{log.read_text()[-3000:] if log.exists() else '(none)'}")
        time.sleep(0.02)
