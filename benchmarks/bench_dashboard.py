"""``/dashboard/data.json`` on a large ledger, on both durable budget stores (SQLite and Redis): one poll
as it is now (the ledger tallied incrementally, then only what it gained since the last poll) beside
the previous way (every poll read the whole ledger and summed it in Python, and the budget report read
the store again for per-user totals).

    python benchmarks/bench_dashboard.py [--rows 1000000] [--users 300] [--new 1000] [--max-entries 100000]

The same ledger of ``--rows`` entries (3 models, ``--users`` users, 40 days) is generated into each store:
a SQLite file in a temp dir, and the ledger stream of a private ``redis-server`` started as the tests
start it (append-only file; skipped, with a message, when redis-server is not installed). The server's
caps: a global day cap and a per-user day cap. How each store is tallied:

    SQLite   aggregate SQL over the entries past the last sequence number read: one poll reads it all
    Redis    the stream past the last entry id read, at most ``--max-entries`` per poll (the server's
             default: 100,000): a fresh server needs several polls to catch up ("ledger complete")

Timed (wall, one run each): the first poll of a fresh server, the polls until the whole ledger is read,
a poll after ``--new`` more answers were committed, and the previous full-read poll at the same point.
The figures of both ways are compared (they must be equal).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("deepseek-v2", "gpt-4o", "text-embedding")
_CHUNK = 100_000


def ledger_rows(rows: int, users: int) -> Iterator[list[tuple]]:
    """(reservation_id, request_id, user, model, cost_nano, at) in chunks: the same rows for both stores."""
    rng, start = random.Random(0), time.time() - 40 * 86400
    for first in range(0, rows, _CHUNK):
        yield [(f"r{i}", f"q{i}", f"user-{rng.randrange(users)}", rng.choice(MODELS), rng.randrange(1, 5_000_000),
                start + rng.random() * 40 * 86400) for i in range(first, min(rows, first + _CHUNK))]


def fill_sqlite(path: Path, rows: int, users: int) -> Any:
    from cascade.budget import open_budget_store
    store = open_budget_store(f"sqlite:///{path}")
    store.total_spent()                                      # the schema
    store.close()
    conn = sqlite3.connect(path)
    for chunk in ledger_rows(rows, users):
        conn.executemany("INSERT INTO ledger (reservation_id, request_id, user_id, model, cost_nano, at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", chunk)
    conn.commit()
    conn.close()
    return open_budget_store(f"sqlite:///{path}")


def fill_redis(url: str, rows: int, users: int) -> Any:
    """The ledger stream in its own entry format (what RedisBudgetStore.commit appends)."""
    from cascade.budget.redis_store import RedisBudgetStore
    store = RedisBudgetStore(url, prefix="bench:")
    store.total_spent()
    for chunk in ledger_rows(rows, users):
        pipe = store._client.pipeline(transaction=False)
        for rid, req, user, model, nano, at in chunk:
            meta = {"id": rid, "request_id": req, "user": user, "model": model, "buckets": []}
            pipe.xadd(store.prefix + "ledger", {"e": json.dumps({"meta": meta, "cost_nano": str(nano),
                                                                 "at": repr(at)})})
        pipe.execute()
    return store


def previous_poll(store, caps) -> dict:
    """What a poll did before: the whole ledger read and summed, and the budget report's reads."""
    from cascade.budget_report import budget_report
    from cascade.server.ledger_spend import entries_spend
    spend = entries_spend(store.ledger())
    budget_report(store, caps)
    return spend


def equal_figures(new: dict, old: dict) -> bool:
    """The same names, call counts and dollars (to 1e-12 relative: sums of nano-dollars vs of floats)."""
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-9)
    for part, key in (("by_model", "model"), ("by_user", "user"), ("by_day", "day")):
        if [r[key] for r in new[part]] != [r[key] for r in old[part]]:
            return False
        if not all(close(a["usd"], b["usd"]) for a, b in zip(new[part], old[part])):
            return False
    return [r["calls"] for r in new["by_model"]] == [r["calls"] for r in old["by_model"]] \
        and close(new["total_usd"], old["total_usd"])


def timed(fn) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh dashboard over ``store``: polls until caught up, new answers, a poll, the previous way."""
    from cascade.server.dashboard import dashboard_data
    from cascade.server.ledger_spend import SpendTally
    from cascade.server.metrics import ServerMetrics
    from policies.budget import Cap

    caps = (Cap("global", "day", 1000.0), Cap("user", "day", 5.0))
    state = SimpleNamespace(router=SimpleNamespace(store=store, caps=caps, policy=SimpleNamespace(name="default")),
                            metrics=ServerMetrics())
    tally = SpendTally(store, max_entries=args.max_entries)
    first, doc = timed(lambda: dashboard_data(state, tally=tally))
    polls, catch_up = 1, first
    while not doc["spend"]["ledger"]["complete"]:
        seconds, doc = timed(lambda: dashboard_data(state, tally=tally))
        polls, catch_up = polls + 1, catch_up + seconds
    for i in range(args.new):
        store.commit(store.reserve(request_id=f"n{i}", user=f"user-{i % args.users}", model="gpt-4o",
                                   amount_usd=0.01, caps=[]), 0.004)
    later, doc = timed(lambda: dashboard_data(state, tally=tally))
    old, old_spend = timed(lambda: previous_poll(store, caps))
    return {"first": first, "polls": polls, "catch_up": catch_up, "later": later, "old": old,
            "same": equal_figures(doc["spend"], old_spend), "entries": doc["spend"]["ledger"]["entries"]}


def redis_figures(tmp: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    if shutil.which("redis-server") is None:
        print("Redis: skipped, redis-server is not installed (apt-get install redis-server)")
        return None
    from tests.harness.redis_server import private_redis_server
    (tmp / "redis").mkdir()
    with private_redis_server(tmp / "redis") as server:
        seconds, store = timed(lambda: fill_redis(server.url, args.rows, args.users))
        print(f"generated a Redis ledger stream of {args.rows:,} entries in {seconds:.1f} s")
        try:
            return measure(store, args)
        finally:
            store.close()


def report(figures: dict[str, dict[str, Any] | None], args: argparse.Namespace) -> None:
    names = list(figures)

    def cell(name: str, fmt: Any, key: str) -> str:
        return "skipped" if figures[name] is None else fmt(figures[name][key])
    rows = [("first poll of a fresh server (s)", "first", lambda v: f"{v:.3f}"),
            ("polls until the whole ledger is read", "polls", str),
            ("  their total wall (s)", "catch_up", lambda v: f"{v:.3f}"),
            (f"a poll after {args.new:,} more answers (s)", "later", lambda v: f"{v:.3f}"),
            ("previous way, every poll: full read (s)", "old", lambda v: f"{v:.3f}"),
            ("figures equal to the full read", "same", str),
            ("ledger entries", "entries", lambda v: f"{v:,}")]
    print(f"{'':<44}" + "".join(f"{n:>14}" for n in names))
    for label, key, fmt in rows:
        print(f"{label:<44}" + "".join(f"{cell(n, fmt, key):>14}" for n in names))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--new", type=int, default=1000)
    ap.add_argument("--max-entries", type=int, default=100_000, help="Redis: stream entries read per poll at most")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        seconds, store = timed(lambda: fill_sqlite(Path(tmp) / "spend.db", args.rows, args.users))
        print(f"generated a SQLite ledger of {args.rows:,} entries, {args.users} users, in {seconds:.1f} s")
        try:
            sqlite = measure(store, args)
        finally:
            store.close()
        report({"SQLite": sqlite, "Redis": redis_figures(Path(tmp), args)}, args)


if __name__ == "__main__":
    main()
