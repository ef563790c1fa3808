"""``cascade budget`` and ``cascade serve`` through a local Typer app (``register``), and as a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from cascade.budget import MemoryBudgetStore, open_budget_store
from cascade.budget_report import budget_caps, budget_report
from cascade.server.cli import is_loopback, register
from policies.budget import Cap
from policies.loader import load_policy

from .conftest import ALICE_KEY, ROOT

app = typer.Typer()
register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def spend(store, user, usd, *, commit=True):
    res = store.reserve(request_id=f"r-{user}-{usd}", user=user, model="deepseek-v2", amount_usd=usd, caps=())
    if commit:
        store.commit(res, usd)
    return res


def populated(store):
    spend(store, "alice", 0.20)
    spend(store, "alice", 0.05)
    spend(store, "bob", 0.10)
    spend(store, None, 0.01)
    spend(store, "bob", 0.03, commit=False)              # still reserved
    return store


def test_budget_report_on_a_memory_store():
    store = populated(MemoryBudgetStore())
    caps = budget_caps(load_policy("default"), global_cap_usd=1.0, user_cap_usd=0.25, cap_window="day")
    assert caps == (Cap("global", "day", 1.0), Cap("user", "day", 0.25))
    doc = budget_report(store, caps)
    assert doc["store"] == "memory://" and doc["open_reservations"] == 1
    assert doc["total_spent_usd"] == pytest.approx(0.36) and doc["unattributed_spent_usd"] == pytest.approx(0.01)
    [glob] = doc["global"]
    assert glob["window"] == "day" and glob["limit_usd"] == 1.0
    assert glob["spent_usd"] == pytest.approx(0.0)       # caps=() at reserve: no bucket was charged
    alice, bob = doc["users"]
    assert alice["user"] == "alice" and alice["spent_usd"] == pytest.approx(0.25)
    assert bob["user"] == "bob" and bob["spent_usd"] == pytest.approx(0.10)
    assert json.loads(json.dumps(doc)) == doc


def test_budget_report_counts_cap_buckets_and_reservations():
    store = MemoryBudgetStore()
    caps = (Cap("global", "total", 1.0), Cap("user", "total", 0.25))
    store.commit(store.reserve(request_id="a", user="alice", model="m", amount_usd=0.2, caps=caps), 0.15)
    store.reserve(request_id="b", user="alice", model="m", amount_usd=0.05, caps=caps)
    doc = budget_report(store, caps, users=["alice", "carol"])
    assert doc["global"] == [{"window": "total", "limit_usd": 1.0, "spent_usd": pytest.approx(0.15),
                              "reserved_usd": pytest.approx(0.05), "remaining_usd": pytest.approx(0.8)}]
    alice, carol = doc["users"]
    assert alice["caps"][0]["remaining_usd"] == pytest.approx(0.05)
    assert carol == {"user": "carol", "spent_usd": 0.0, "caps": [
        {"window": "total", "limit_usd": 0.25, "spent_usd": 0.0, "reserved_usd": 0.0, "remaining_usd": 0.25}]}


def test_budget_caps_default_to_the_policys(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("extends: default\nname: capped\nbudgets:\n  global: [{window: month, usd: 100}]\n"
                    "  per_user: [{window: day, usd: 2}]\n")
    assert budget_caps(load_policy(str(path))) == (Cap("global", "month", 100.0), Cap("user", "day", 2.0))


def test_budget_cli_json_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path}/spend.db"
    with open_budget_store(url) as store:
        populated(store)
    result = runner.invoke(app, ["budget", "--budget-store", url, "--user", "alice", "--global-cap-usd", "1",
                                 "--user-cap-usd", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["total_spent_usd"] == pytest.approx(0.36) and [u["user"] for u in doc["users"]] == ["alice"]
    assert doc["users"][0]["caps"][0]["limit_usd"] == 0.5


def test_budget_cli_table_on_sqlite_subprocess(tmp_path):
    url = f"sqlite:///{tmp_path}/spend.db"
    with open_budget_store(url) as store:
        populated(store)
    out = subprocess.run([sys.executable, "-m", "cascade.server", "budget", "--budget-store", url,
                          "--global-cap-usd", "1", "--user-cap-usd", "0.25", "--cap-window", "day"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": ""})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "$0.360000 spent in all; open reservations: 1" in lines[0]
    for who, spent in (("global", "$0.360000"), ("alice", "$0.250000"), ("bob", "$0.100000"), ("(no user)", "$0.010000")):
        assert any(who in line and spent in line for line in lines), (who, out.stdout)


@pytest.mark.parametrize("args, message", [
    (["--budget-store", "bogus://x"], "unknown budget store URL"),
    (["--policy", "no-such-policy"], "ConfigError"),
    (["--cap-window", "fortnight", "--global-cap-usd", "1", "--budget-store", "memory://"], "cap_window"),
])
def test_budget_cli_errors_exit_2_without_traceback(args, message):
    result = runner.invoke(app, ["budget", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


# ---- serve (uvicorn.run replaced: these check the wiring, the subprocess tests check the serving) ------------

@pytest.fixture
def uvicorn_calls(monkeypatch):
    import uvicorn
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_serve_builds_the_app_and_runs_uvicorn(uvicorn_calls, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  {ALICE_KEY}: alice\n")
    result = runner.invoke(app, ["serve", "--port", "8123", "--budget-store", "memory://", "--keys", str(keys),
                                 "--global-cap-usd", "5", "--cap-window", "day"])
    assert result.exit_code == 0, result.output
    [(asgi, kw)] = uvicorn_calls
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123 and kw["access_log"] is False and kw["loop"] == "auto"
    assert kw["timeout_keep_alive"] == 75
    state = asgi.state.cascade
    assert len(state.keys) == 1 and "1 API keys" in result.output and "warning" not in result.output
    assert ALICE_KEY not in result.output
    assert "dashboard http://127.0.0.1:8123/dashboard" in result.output


def test_serve_warns_without_keys_on_a_public_interface(uvicorn_calls):
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--budget-store", "memory://"])
    assert result.exit_code == 0 and "warning: serving on 0.0.0.0 without --keys" in result.output
    result = runner.invoke(app, ["serve", "--host", "127.0.0.1", "--budget-store", "memory://", "--access-log"])
    assert "warning" not in result.output and uvicorn_calls[-1][1]["access_log"] is True


@pytest.mark.parametrize("args, message", [
    (["--keys", "/nonexistent/keys.yaml"], "cannot read the keys file"),
    (["--policy", "no-such-policy"], "ConfigError"),
    (["--budget-store", "bogus://"], "unknown budget store URL"),
    (["--global-cap-usd", "-1"], "global_cap_usd"),
])
def test_serve_config_errors_exit_2_without_traceback(uvicorn_calls, args, message):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    assert uvicorn_calls == []


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("10.0.0.5", False), ("example.com", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_workers_need_a_shared_budget_store(uvicorn_calls, tmp_path):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--workers", "2"])
    assert result.exit_code == 2 and "memory:// is per process" in result.output and uvicorn_calls == []
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--workers", "0"])
    assert result.exit_code == 2 and "--workers must be at least 1" in result.output
    result = runner.invoke(app, ["serve", "--budget-store", f"sqlite:///{tmp_path}/s.db", "--workers", "2"])
    assert result.exit_code == 0, result.output
    [(target, kw)] = uvicorn_calls
    assert target == "cascade.server.app:app_from_env" and kw["workers"] == 2 and kw["factory"] is True


@pytest.mark.parametrize("flag, transports", [
    ([], {"direct"}), (["--transport", "direct"], {"direct"}), (["--transport", "litellm"], {"litellm"}),
    (["--transport", "policy"], {"litellm"}),       # the built-in policy's own
])
def test_serve_transport(uvicorn_calls, flag, transports):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", *flag])
    assert result.exit_code == 0, result.output
    [(asgi, _)] = uvicorn_calls
    from starlette.testclient import TestClient
    with TestClient(asgi):                          # the lifespan binds the Router
        router = asgi.state.cascade.router
        assert {m.transport for m in router.policy.catalog.values()} == transports


def test_serve_rejects_an_unknown_transport(uvicorn_calls):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--transport", "grpc"])
    assert result.exit_code == 2 and "--transport must be direct, litellm or policy" in result.output


def test_budget_shows_and_applies_the_spool(tmp_path):
    from cascade.budget.base import new_reservation
    from cascade.spool import Settlement, SettlementSpool, spool_path
    url = f"sqlite:///{tmp_path}/spend.db"
    with open_budget_store(url) as store:
        populated(store)
        spool = SettlementSpool(spool_path(store, tmp_path / "spool"))
    res = new_reservation(request_id="late", user="alice", model="deepseek-v2", amount_nano=0, expires_at=0.0,
                          checks=())
    spool.append(Settlement.of(res, 40_000_000, 1.0))                       # $0.04 the store could not take
    args = ["budget", "--budget-store", url, "--spool-dir", str(tmp_path / "spool")]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "1 settlement(s), $0.040000000 not in the ledger yet" in shown.stdout and "--apply-spool" in shown.stdout
    applied = runner.invoke(app, [*args, "--apply-spool", "--json"])
    doc = json.loads(applied.stdout)
    assert doc["actions"] == ["applied 1 spooled settlement(s)"] and doc["spool"]["pending"] == 0
    assert doc["total_spent_usd"] == pytest.approx(0.40) and doc["ledger"] is None     # sqlite keeps no generation
    assert runner.invoke(app, [*args, "--confirm-new-ledger"]).exit_code == 2           # only redis:// does


def test_serve_graceful_timeout_defaults_to_the_policys_attempt_timeout(uvicorn_calls, tmp_path):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://"])
    assert result.exit_code == 0 and uvicorn_calls[-1][1]["timeout_graceful_shutdown"] == 65
    assert "graceful shutdown 65 s" in result.output
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--graceful-timeout", "12.5"])
    assert result.exit_code == 0 and uvicorn_calls[-1][1]["timeout_graceful_shutdown"] == 13
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--graceful-timeout", "-1"])
    assert result.exit_code == 2 and "--graceful-timeout must be" in result.output


def test_serve_passes_the_prompt_limit_and_keepalive(uvicorn_calls):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", "--max-prompt-chars", "5000",
                                 "--sse-keepalive-s", "2.5"])
    assert result.exit_code == 0, result.output
    [(asgi, _)] = uvicorn_calls
    assert asgi.state.cascade.sse_keepalive_s == 2.5
    from starlette.testclient import TestClient
    with TestClient(asgi):
        assert asgi.state.cascade.router.services.max_prompt_chars == 5000


@pytest.mark.parametrize("args, message", [(["--max-prompt-chars", "0"], "max_prompt_chars must be a positive"),
                                           (["--sse-keepalive-s", "0"], "--sse-keepalive-s must be positive")])
def test_serve_refuses_bad_limits(uvicorn_calls, args, message):
    result = runner.invoke(app, ["serve", "--budget-store", "memory://", *args])
    assert result.exit_code == 2 and message in result.output and uvicorn_calls == []
