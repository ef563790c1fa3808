"""A Redis that lost its ledger is noticed and refused until an operator confirms a new one
(cascade.budget.generation), against real redis-server processes restarted with and without persistence."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cascade.budget.base import new_reservation, resolve_caps
from cascade.budget.generation import GenerationMarker
from cascade.budget.redis_store import RedisBudgetStore
from cascade.cli import app
from cascade.commands import register
from cascade.spool import Settlement, SettlementSpool, spool_path
from policies.budget import Cap, to_nano
from policies.errors import LedgerLost
from tests.harness.redis_server import RedisProcess

pytestmark = pytest.mark.redis
CAP = Cap("global", "total", 1.0)
register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def spend(store, usd: float, request_id: str = "r") -> None:
    store.commit(store.reserve(request_id=request_id, user="alice", model="m", amount_usd=usd, caps=[CAP]), usd)


@pytest.fixture
def redis_of(tmp_path):
    started: list[RedisProcess] = []

    def start(persistence: str) -> RedisProcess:
        workdir = tmp_path / f"redis-{len(started)}"
        workdir.mkdir()
        started.append(RedisProcess(workdir, persistence=persistence).start())
        return started[-1]
    yield start
    for proc in started:
        proc.stop()


def host_store(url: str, host, name: str = "marker") -> RedisBudgetStore:
    """A store as one host opens it (its marker file in that host's spool directory)."""
    return RedisBudgetStore(url, marker=GenerationMarker(host / f"{name}.generation"))


def test_a_restart_with_the_append_only_file_keeps_the_ledger_and_its_generation(redis_of, tmp_path):
    redis = redis_of("aof-always")
    store = host_store(redis.server.url, tmp_path)
    spend(store, 0.25)
    generation = store.verify()
    assert store.persistence() == "aof"
    redis.kill()
    redis.start()
    spend(store, 0.5, "r2")                               # the same process goes on
    restarted = host_store(redis.server.url, tmp_path)    # and a restarted one too
    assert restarted.verify() == generation and restarted.total_spent() == 0.75
    assert [e.request_id for e in restarted.ledger()] == ["r", "r2"]


def test_a_restart_without_persistence_is_refused_until_confirmed(redis_of, tmp_path, monkeypatch):
    redis = redis_of("none")
    url = redis.server.url
    store = host_store(url, tmp_path)
    spend(store, 0.9)
    assert store.persistence() == "none"
    redis.kill()
    redis.start()                                         # empty: every cap would start again from $0

    with pytest.raises(LedgerLost, match="lost its ledger.*--confirm-new-ledger"):
        spend(store, 0.9, "r2")                           # the running process
    with pytest.raises(LedgerLost):
        host_store(url, tmp_path).verify()                # a restarted process of the same host
    with pytest.raises(LedgerLost):
        host_store(url, tmp_path / "other-host").reserve(request_id="x", user=None, model="m", amount_usd=0.1,
                                                         caps=[CAP])     # one that remembers nothing
    assert store.open_reservations() == 0

    # meanwhile a request's settlement was spooled; the operator confirms, the spool is applied
    monkeypatch.setenv("CASCADE_SPOOL_DIR", str(tmp_path))
    res = new_reservation(request_id="spooled", user="alice", model="m", amount_nano=0, expires_at=0.0,
                          checks=resolve_caps([CAP], "alice", 0.0))
    SettlementSpool(spool_path(RedisBudgetStore(url))).append(Settlement.of(res, to_nano(0.125), 1.0))
    shown = runner.invoke(app, ["budget", "--budget-store", url, "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["ledger"]["state"] == "lost" and doc["ledger"]["persistence"] == "none"
    assert doc["spool"]["pending"] == 1 and doc["spool"]["pending_usd"] == 0.125
    done = runner.invoke(app, ["budget", "--budget-store", url, "--confirm-new-ledger", "--apply-spool"])
    assert done.exit_code == 0, done.output
    assert "confirmed" in done.stdout and "applied 1 spooled settlement(s)" in done.stdout
    assert "ledger generation" in done.stdout and ": ok;" in done.stdout

    spend(store, 0.5, "r3")                               # every process adopts the confirmed ledger
    assert host_store(url, tmp_path / "other-host").total_spent() == 0.625


def test_a_ledger_begun_on_an_emptied_redis_is_refused_by_the_processes_that_knew_the_old_one(redis_of, tmp_path):
    redis = redis_of("none")
    old = host_store(redis.server.url, tmp_path / "a")
    spend(old, 0.4)
    redis.kill()
    redis.start()
    newcomer = host_store(redis.server.url, tmp_path / "b")       # a new host: begins a ledger by itself
    spend(newcomer, 0.1)
    with pytest.raises(LedgerLost, match="begun after"):
        spend(old, 0.1, "r2")                             # the old host notices, and marks the ledger lost
    with pytest.raises(LedgerLost):
        spend(newcomer, 0.1, "r3")                        # so the newcomer stops too: one truth for all
    generation = newcomer.confirm_new_ledger()
    spend(old, 0.1, "r4")
    assert old.verify() == generation == newcomer.verify()


def test_a_fresh_redis_begins_a_ledger_without_an_operator(redis_of, tmp_path):
    redis = redis_of("aof")
    store = host_store(redis.server.url, tmp_path)
    spend(store, 0.3)
    assert GenerationMarker(tmp_path / "marker.generation").read() == store.verify()
