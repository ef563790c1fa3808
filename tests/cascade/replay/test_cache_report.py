"""``cascade replay --traces``: what an exact response cache would have saved, from the requests the
trace recorded (request_digest, temperature, user, outcome, cost), in the order they were made."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cascade.cache.report import cache_report
from cascade import commands
from cascade.cli import app
from policies.cache import CacheConfig
from tests.cascade.replay.test_router_traces import provider_env
from tests.cascade.router.conftest import FixedScore

commands.register(app)


def line(digest: str, ts: float, cost: float, *, user: str = "u", temperature: float | None = 0,
         outcome: str = "ok", finish: str = "stop") -> dict:
    return {"policy": "p", "request_digest": digest, "ts": ts, "cost_usd": cost, "user": user,
            "temperature": temperature, "outcome": outcome, "model": "m",
            "attempts": [{"model": "m", "status": "ok", "finish_reason": finish}]}


@pytest.mark.parametrize("lines,config,hits,saved", [
    ([line("a", 0, 1.0), line("a", 1, 1.0), line("a", 2, 1.0)], CacheConfig(), 2, 2.0),
    ([line("a", 0, 1.0), line("a", 4000, 1.0)], CacheConfig(ttl_s=3600), 0, 0.0),            # expired
    ([line("a", 0, 1.0, user="x"), line("a", 1, 1.0, user="y")], CacheConfig(), 0, 0.0),   # scope user
    ([line("a", 0, 1.0, user="x"), line("a", 1, 2.0, user="y")], CacheConfig(scope="global"), 1, 2.0),
    ([line("a", 0, 1.0, temperature=None), line("a", 1, 1.0, temperature=None)], CacheConfig(), 0, 0.0),
    ([line("a", 0, 1.0, temperature=0.7), line("a", 1, 1.0, temperature=0.7)],
     CacheConfig(temperature_any=True), 1, 1.0),
    ([line("a", 0, 1.0, outcome="best_answer"), line("a", 1, 1.0)], CacheConfig(), 0, 0.0),  # never stored
    ([line("a", 0, 1.0, finish="length"), line("a", 1, 1.0), line("a", 2, 3.0)], CacheConfig(), 1, 3.0),
    ([line("a", 0, 1.0), line("b", 1, 1.0)], CacheConfig(), 0, 0.0),
])
def test_the_report_counts_hits_and_savings(lines, config, hits, saved):
    doc = cache_report(lines, config)
    assert (doc["hits"], doc["saved_usd"]) == (hits, pytest.approx(saved))
    assert doc["hit_rate"] == pytest.approx(hits / len(lines))


def test_replay_of_router_traces_reports_the_cache(fake_provider, tmp_path):
    from cascade.router import Router
    from tests.harness.scripts import answer
    fake_provider.script("deepseek-chat", answer("an answer", prompt_tokens=100, completion_tokens=10))
    traces = tmp_path / "traces.jsonl"
    router = Router("default", classifier=FixedScore(0.1), budget_store="memory://", trace_path=traces,
                    env=provider_env(fake_provider.url), seed=0)
    try:
        for text, temperature in [("q1", 0), ("q1", 0), ("q2", 0), ("q1", 0), ("q3", None), ("q3", None)]:
            router.complete([{"role": "user", "content": text}], **({} if temperature is None else
                                                                  {"temperature": temperature}))
    finally:
        router.close()
    costs = [json.loads(x)["cost_usd"] for x in traces.read_text().splitlines()]
    result = CliRunner().invoke(app, ["replay", "--policy", "default", "--traces", str(traces), "--json", "-q"])
    assert result.exit_code == 0, result.output
    cache = json.loads(result.stdout)["cache"]
    assert (cache["requests"], cache["cacheable"], cache["hits"]) == (6, 4, 2)
    assert cache["saved_usd"] == pytest.approx(costs[1] + costs[3])
    text = CliRunner().invoke(app, ["replay", "--policy", "default", "--traces", str(traces), "-q"])
    assert "2 of 6 requests would hit (33.3%" in text.stdout


def test_replay_leaves_cache_hits_out_and_reports_them(fake_provider, tmp_path):
    from cascade.replay.run import run_replay
    from cascade.router import Router
    from policies.loader import parse_policy
    from tests.harness.scripts import answer
    fake_provider.script("deepseek-chat", answer("an answer"))
    traces = tmp_path / "traces.jsonl"
    policy = parse_policy("extends: default\nname: default\ncache: {store: 'memory://'}\n", source="c.yaml")
    router = Router(policy, classifier=FixedScore(0.1), budget_store="memory://", trace_path=traces,
                    env=provider_env(fake_provider.url), seed=0)
    try:
        for text in ("q1", "q1", "q2", "q1"):
            router.complete([{"role": "user", "content": text}], temperature=0)
    finally:
        router.close()
    run = run_replay(policy, traces=traces, classifier=FixedScore(0.1))
    assert len(run.data) == 2 and any("2 requests answered from the response cache" in n for n in run.data.notes)
    assert run.engine.missing_calls == 0
    report = CliRunner().invoke(app, ["replay", "--policy", "default", "--traces", str(traces), "--json", "-q"])
    cache = json.loads(report.stdout)["cache"]
    assert (cache["requests"], cache["hits"]) == (4, 2) and cache["saved_usd"] > 0
