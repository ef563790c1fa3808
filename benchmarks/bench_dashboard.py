"""``/dashboard/data.json`` on a large ledger: one poll as it is now (the ledger tallied by aggregate SQL,
then only what it gained since the last poll) beside the previous way (every poll read the whole ledger
and summed it in Python, and the budget report scanned it again for per-user totals).

    python benchmarks/bench_dashboard.py [--rows 1000000] [--users 300] [--new 1000]

A SQLite ledger of ``--rows`` entries (3 models, ``--users`` users, 40 days) is generated in a temp dir;
the server's caps: a global day cap and a per-user day cap. Timed (wall, one run each): the first poll of
a fresh server, a poll after ``--new`` more answers were committed, and the previous full-read poll at
the same point. The figures of both ways are compared (they must be equal).
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(path: Path, rows: int, users: int) -> None:
    from cascade.budget import open_budget_store
    store = open_budget_store(f"sqlite:///{path}")
    store.total_spent()
    store.close()
    rng, start = random.Random(0), time.time() - 40 * 86400
    conn = sqlite3.connect(path)
    for first in range(0, rows, 100_000):
        conn.executemany("INSERT INTO ledger (reservation_id, request_id, user_id, model, cost_nano, at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         [(f"r{i}", f"q{i}", f"user-{rng.randrange(users)}", rng.choice(("deepseek-v2", "gpt-4o",
                           "text-embedding")), rng.randrange(1, 5_000_000), start + rng.random() * 40 * 86400)
                          for i in range(first, min(rows, first + 100_000))])
    conn.commit()
    conn.close()


def previous_poll(store, caps) -> dict:
    """What a poll did before: the whole ledger read and summed, and the budget report's scans."""
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


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--new", type=int, default=1000)
    args = ap.parse_args(argv)

    from cascade.budget import open_budget_store
    from cascade.server.dashboard import dashboard_data
    from cascade.server.ledger_spend import SpendTally
    from cascade.server.metrics import ServerMetrics
    from policies.budget import Cap

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        path = Path(tmp) / "spend.db"
        seconds, _ = timed(lambda: generate(path, args.rows, args.users))
        print(f"generated a SQLite ledger of {args.rows:,} entries, {args.users} users, in {seconds:.1f} s")
        store = open_budget_store(f"sqlite:///{path}")
        caps = (Cap("global", "day", 1000.0), Cap("user", "day", 5.0))
        state = SimpleNamespace(router=SimpleNamespace(store=store, caps=caps, policy=SimpleNamespace(name="default")),
                                metrics=ServerMetrics())
        tally = SpendTally(store)
        first, _ = timed(lambda: dashboard_data(state, tally=tally))
        for i in range(args.new):
            store.commit(store.reserve(request_id=f"n{i}", user=f"user-{i % args.users}", model="gpt-4o",
                                       amount_usd=0.01, caps=[]), 0.004)
        later, doc = timed(lambda: dashboard_data(state, tally=tally))
        old, old_spend = timed(lambda: previous_poll(store, caps))
        same = equal_figures(doc["spend"], old_spend)
        print(f"{'poll':<52}{'wall s':>10}")
        print(f"{'first poll of a fresh server (aggregate SQL)':<52}{first:>10.3f}")
        print(f"{f'a poll after {args.new:,} more answers (new rows only)':<52}{later:>10.3f}")
        print(f"{'previous way, every poll (full read)':<52}{old:>10.3f}")
        print(f"figures equal to the full read: {same}; ledger entries {doc['spend']['ledger']['entries']:,}")
        store.close()


if __name__ == "__main__":
    main()
