"""The settlement spool: durable, applied exactly once (idempotent by attempt id), shared by processes."""
from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from cascade.budget import open_budget_store
from cascade.budget.base import new_reservation, resolve_caps
from cascade.spool import Settlement, SettlementSpool, open_spool, spool_path
from policies.budget import Cap, to_nano
from policies.errors import BudgetStoreUnavailable

T0 = 1_699_920_000.0
CAPS = (Cap("global", "day", 10.0), Cap("user", "day", 1.0))


def settlement(i: int, cost_nano: int = 1_234, user: str = "alice") -> Settlement:
    res = new_reservation(request_id=f"req-{i}", user=user, model="deepseek-v2", amount_nano=0,
                          expires_at=T0, checks=resolve_caps(CAPS, user, T0))
    return Settlement.of(res, cost_nano, T0 + i)


class DownStore:
    url = "sqlite:////nowhere/spend.db"

    def commit(self, *a, **kw):
        raise BudgetStoreUnavailable("sqlite budget store: disk I/O error")


def test_a_settlement_round_trips_through_the_file(tmp_path):
    spool = SettlementSpool(tmp_path / "s.jsonl")
    assert not spool.has_pending() and spool.pending() == []
    one = settlement(1)
    spool.append(one)
    assert spool.has_pending() and spool.pending() == [one]
    assert spool.summary() == {"path": str(spool.path), "pending": 1, "pending_usd": 1.234e-06, "oldest_at": T0 + 1}
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_applied_exactly_once_even_when_applied_again(kind, tmp_path, request):
    url = f"sqlite:///{tmp_path}/spend.db" if kind == "sqlite" else \
        request.getfixturevalue("redis_server").url.rsplit("/", 1)[0] + "/6"
    store = open_budget_store(url)
    if kind == "redis":
        store.prefix = f"spool-{os.getpid()}-{id(store)}:"
    spool = SettlementSpool(tmp_path / "s.jsonl")
    for i in range(5):
        spool.append(settlement(i, cost_nano=1_000 * (i + 1)))
    raw = spool.path.read_bytes()
    assert spool.apply(store) == (5, None)
    assert not spool.has_pending()                      # every settlement applied: the file starts over
    # a crash after applying and before marking them applied: the same lines are applied again
    spool.path.write_bytes(raw)
    assert spool.apply(store) == (5, None)
    entries = store.ledger()
    assert sorted(e.request_id for e in entries) == [f"req-{i}" for i in range(5)]
    assert to_nano(store.total_spent()) == 15_000
    (glob, alice) = store.snapshot(user="alice", caps=CAPS, now=T0).usages
    assert to_nano(glob.spent_usd) == to_nano(alice.spent_usd) == 15_000     # in the caps' buckets of that day
    assert entries[0].at == T0                          # recorded at the time it was spent
    store.close()


def test_a_down_store_keeps_everything_pending(tmp_path):
    spool = SettlementSpool(tmp_path / "s.jsonl")
    spool.append(settlement(1))
    spool.append(settlement(2))
    applied, error = spool.apply(DownStore())
    assert applied == 0 and isinstance(error, BudgetStoreUnavailable)
    assert [s.request_id for s in spool.pending()] == ["req-1", "req-2"]


def test_a_line_cut_short_by_a_crash_is_skipped_and_later_lines_are_whole(tmp_path):
    spool = SettlementSpool(tmp_path / "s.jsonl")
    spool.append(settlement(1))
    with open(spool.path, "ab") as fh:                   # the process died in the middle of a write
        fh.write(json.dumps(settlement(2).to_json()).encode()[:40])
    spool.append(settlement(3))
    assert [s.request_id for s in spool.pending()] == ["req-1", "req-3"]
    assert spool.path.read_bytes().count(b"\n") == 3


def _append_many(path: str, worker: int, n: int) -> None:
    spool = SettlementSpool(path)
    for i in range(n):
        spool.append(settlement(worker * 1_000 + i))


def test_processes_append_to_one_spool_without_losing_a_line(tmp_path):
    path = str(tmp_path / "s.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 60)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = {s.request_id for s in SettlementSpool(path).pending()}
    assert ids == {f"req-{w * 1_000 + i}" for w in range(4) for i in range(60)}


def test_where_the_spool_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_SPOOL_DIR", str(tmp_path / "env"))
    sqlite = open_budget_store(f"sqlite:///{tmp_path}/a.db")
    assert spool_path(sqlite).parent == tmp_path / "env"
    assert spool_path(sqlite) == spool_path(open_budget_store(f"sqlite:///{tmp_path}/a.db"))
    assert spool_path(sqlite) != spool_path(open_budget_store(f"sqlite:///{tmp_path}/b.db"))
    assert spool_path(sqlite, tmp_path / "x").parent == tmp_path / "x"
    assert spool_path(open_budget_store("memory://")) is None and open_spool(open_budget_store("memory://")) is None
