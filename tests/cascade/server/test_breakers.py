"""Circuit breakers seen from outside ``cascade serve`` (a subprocess): /metrics shows each model's
circuit and its transitions, /healthz says degraded (and why) while every model of a ladder is open,
circuit-open 502s carry Retry-After, and a short first cooldown lets a recovered upstream back in."""
from __future__ import annotations

import time

import httpx
import pytest

POLICY = """extends: default
name: breakers
escalation: {checks: [non_empty]}
retries: {server_error: {attempts: 1}}
circuit_breaker: {failures: 2, cooldown_s: 2, cooldown_multiplier: 2, max_cooldown_s: 30}
"""
DOWN = {"fallback": {"default": {"kind": "http_error", "status": 500}}}
UP = {"fallback": {"default": {"kind": "answer", "content": "Paris."}}}


def samples(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def ask(url: str) -> httpx.Response:
    body = {"model": "cascade", "messages": [{"role": "user", "content": "Capital of France?"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


@pytest.mark.slow
def test_breakers_in_metrics_healthz_and_retry_after(tmp_path, spawn_fake_provider, spawn_serve):
    provider = spawn_fake_provider(DOWN)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    [served] = spawn_serve(provider.url, ["--policy", str(policy), "--budget-store", "memory://"])
    url = served.url
    assert samples(url)['cascade_circuit_state{model="deepseek-v2"}'] == 0

    first = [ask(url) for _ in range(2)]                   # two failures of each model open both circuits
    assert all(r.status_code == 502 for r in first)
    m = samples(url)
    assert m['cascade_circuit_state{model="deepseek-v2"}'] == 2 and m['cascade_circuit_state{model="gpt-4o"}'] == 2
    assert m['cascade_circuit_transitions_total{model="deepseek-v2",to="open"}'] == 1
    assert m['cascade_circuit_state{model="deepseek-vl2"}'] == 0

    health = httpx.get(url + "/healthz", timeout=10)
    doc = health.json()
    assert health.status_code == 200 and doc["status"] == "degraded"
    assert doc["ladders"]["text"] == "open" and doc["breakers"]["gpt-4o"] == "open"
    assert any("text ladder" in why and "deepseek-v2" in why for why in doc["degraded"])

    refused = ask(url)                                      # every capable model is open: no call at all
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "escalation_exhausted"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    calls = sum(t["requests"] for t in provider.tally()["models"].values())

    provider.load_scripts(UP)                               # the upstream recovers: 2 s later it is back
    time.sleep(int(refused.headers["retry-after"]) + 0.2)
    ok = ask(url)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "Paris."
    assert sum(t["requests"] for t in provider.tally()["models"].values()) == calls + 1    # the one probe
    m = samples(url)
    assert m['cascade_circuit_state{model="deepseek-v2"}'] == 0
    assert m['cascade_circuit_transitions_total{model="deepseek-v2",to="half_open"}'] == 1
    assert m['cascade_circuit_transitions_total{model="deepseek-v2",to="closed"}'] == 1
    assert httpx.get(url + "/healthz", timeout=10).json()["status"] == "ok"
