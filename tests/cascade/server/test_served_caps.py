"""``cascade budget`` shows the caps ``cascade serve`` was started with (recorded beside the store)."""
from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from cascade.budget import open_budget_store
from cascade.server.served_caps import caps_path, read_caps, record_caps
from policies.budget import Cap
from tests.harness.fake_provider import answer

from .conftest import ROOT, subprocess_env, user_msg


def budget_json(env, *args):
    out = subprocess.run([sys.executable, "-m", "cascade.server", "budget", "--json", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cascade_budget_reads_the_caps_a_real_serve_recorded(fake_provider, spawn_serve, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris.", prompt_tokens=20, completion_tokens=10))
    url = f"sqlite:///{tmp_path}/spend.db"
    [served] = spawn_serve(fake_provider.url, ["--budget-store", url, "--global-cap-usd", "2.5",
                                               "--user-cap-usd", "0.25", "--cap-window", "day"])
    assert "caps recorded in" in served.log.read_text()
    resp = httpx.post(served.url + "/v1/chat/completions", timeout=60,
                      json={"model": "cascade", "messages": user_msg("hi"), "user": "alice", "max_tokens": 20})
    assert resp.status_code == 200
    env = subprocess_env(fake_provider.url)
    doc = budget_json(env, "--budget-store", url)
    assert doc["caps_from"].startswith("cascade serve (policy default)")
    [glob] = doc["global"]
    assert (glob["window"], glob["limit_usd"]) == ("day", 2.5)
    [alice] = doc["users"]
    [cap] = alice["caps"]
    assert (cap["window"], cap["limit_usd"]) == ("day", 0.25)
    assert cap["remaining_usd"] == pytest.approx(0.25 - alice["spent_usd"]) and alice["spent_usd"] > 0
    doc = budget_json(env, "--budget-store", url, "--user-cap-usd", "1")     # told otherwise: as told
    assert doc["users"][0]["caps"][0]["limit_usd"] == 1.0 and doc["caps_from"].startswith("policy default")
    out = subprocess.run([sys.executable, "-m", "cascade.server", "budget", "--budget-store", url], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert "caps: cascade serve (policy default)" in out.stdout


def test_record_and_read_caps_per_store(tmp_path):
    caps = (Cap("global", "month", 30.0), Cap("user", "day", 1.0))
    sqlite = open_budget_store(f"sqlite:///{tmp_path}/a/spend.db")
    try:
        assert read_caps(sqlite) is None
        path = record_caps(sqlite, caps, policy="budget-strict")
        assert path == tmp_path / "a" / "spend.db.serve-caps.json" == caps_path(sqlite)
        got = read_caps(sqlite)
        assert got["caps"] == caps and got["policy"] == "budget-strict"
        path.write_text("{not json")
        assert read_caps(sqlite) is None
    finally:
        sqlite.close()
    memory = open_budget_store("memory://")
    assert record_caps(memory, caps, policy="default") is None and read_caps(memory) is None
