"""OpenTelemetry GenAI spans and metrics (cascade.otel) through a real SDK TracerProvider / MeterProvider with
the SDK's in-memory span exporter and metric reader, a Router calling the local fake provider; and, in a
subprocess, ``OTEL_TRACES_EXPORTER=console`` printing the spans."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from cascade.otel import OpenTelemetry  # noqa: E402
from cascade.router import Router  # noqa: E402
from policies.errors import EscalationExhausted  # noqa: E402
from policies.loader import load_policy, parse_policy  # noqa: E402
from tests.cascade.router.conftest import KEYS, FixedScore, provider_env  # noqa: E402
from tests.harness.fake_provider import answer, empty, http_error  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROMPT = [{"role": "user", "content": "Prove that sqrt(2) is irrational, please"}]
OTEL_POLICY = "extends: default\nname: traced\ntelemetry: {opentelemetry: true}\n"


@pytest.fixture
def otel():
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield spans, reader, tracer_provider, meter_provider
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def traced_router(fake_provider, otel):
    routers = []

    def make(policy="default", *, capture_content=False, score=0.1):
        pol = load_policy(policy) if isinstance(policy, str) else policy
        telemetry = OpenTelemetry(pol.catalog, tracer_provider=otel[2], meter_provider=otel[3],
                                  capture_content=capture_content, secrets=list(KEYS.values()))
        router = Router(pol, classifier=FixedScore(score), env=provider_env(fake_provider.url), seed=0,
                        budget_store="memory://", telemetry=telemetry)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


def by_name(spans):
    request = [s for s in spans if s.parent is None]
    assert len(request) == 1, [s.name for s in spans]
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time)
    assert all(c.parent.span_id == request[0].context.span_id for c in children)
    return request[0], children


def metric_points(reader, name):
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points]


async def test_an_escalated_request_is_a_span_with_one_child_per_attempt(traced_router, fake_provider, otel):
    fake_provider.script("deepseek-chat", empty())
    fake_provider.script("gpt-4o", answer("Because sqrt(2)=p/q leads to a contradiction.", prompt_tokens=30,
                                          completion_tokens=12))
    router = traced_router()
    resp = await router.acomplete(PROMPT)
    trace = resp.cascade
    request, attempts = by_name(otel[0].get_finished_spans())

    a = request.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "deepseek-chat"
    assert a["gen_ai.response.model"] == "gpt-4o" and a["gen_ai.system"] == "openai"
    assert a["cascade.escalated"] is True and a["cascade.cost_usd"] == pytest.approx(trace.cost_usd)
    assert a["gen_ai.usage.input_tokens"] == sum(x.prompt_tokens for x in trace.attempts)
    assert a["gen_ai.usage.output_tokens"] == sum(x.completion_tokens for x in trace.attempts)
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",) and a["cascade.outcome"] == "ok"
    assert "cascade.cache_hit" not in a                # only when the trace carries one

    cheap, strong = attempts
    assert cheap.attributes["gen_ai.system"] == cheap.attributes["gen_ai.provider.name"] == "deepseek"
    assert cheap.attributes["gen_ai.request.model"] == "deepseek-chat"
    assert cheap.attributes["cascade.status"] == "check_failed"
    assert tuple(cheap.attributes["cascade.checks.failed"]) == ("non_empty",)
    assert strong.attributes["gen_ai.usage.input_tokens"] == 30
    assert strong.attributes["gen_ai.usage.output_tokens"] == 12
    assert strong.attributes["cascade.cost_usd"] == pytest.approx(trace.attempts[1].cost_usd)
    assert cheap.end_time <= strong.end_time <= request.end_time and request.start_time <= cheap.start_time

    spans_text = json.dumps([dict(s.attributes) for s in (request, *attempts)])
    assert "sqrt(2)" not in spans_text                     # no prompt or answer text by default
    assert not any(key in spans_text for key in KEYS.values())

    tokens = metric_points(otel[1], "gen_ai.client.token.usage")
    by_kind = {(p.attributes["gen_ai.request.model"], p.attributes["gen_ai.token.type"]): p.sum for p in tokens}
    assert by_kind[("gpt-4o", "input")] == 30 and by_kind[("gpt-4o", "output")] == 12
    durations = metric_points(otel[1], "gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 2


async def test_a_second_opinion_is_a_child_span_and_the_answer_span_ends_when_its_call_did(
        traced_router, fake_provider, otel):
    fake_provider.script("deepseek-chat", answer("The answer is (B).", prompt_tokens=11, completion_tokens=5))
    fake_provider.script("deepseek-coder", answer("The answer is (C).", latency=0.3))
    fake_provider.script("gpt-4o", answer("The answer is (C)."))
    # quality-match with GPT-4o's answer checked too (the shipped one takes it as it is), so that both
    # answers get a second opinion
    router = traced_router(parse_policy("extends: quality-match\nname: qm-all-checked\n"
                                        "escalation: {check_last_rung: true}\n", source="qm.yaml"))
    resp = await router.acomplete([{"role": "user", "content": "Which is right? A. x  B. y  C. z"}])
    assert [a.status for a in resp.cascade.attempts] == ["second_opinion", "check_failed", "second_opinion", "ok"]
    request, (cheap, second, strong, third) = by_name(otel[0].get_finished_spans())
    assert [s.attributes["cascade.model"] for s in (cheap, second, strong, third)] == [
        "deepseek-v2", "deepseek-coder", "gpt-4o", "deepseek-coder"]
    assert second.attributes["cascade.second_opinion"] is True and cheap.attributes["cascade.second_opinion"] is False
    assert tuple(cheap.attributes["cascade.checks.failed"]) == ("agreement",)
    assert tuple(strong.attributes["cascade.checks.passed"])[-1] == "agreement"
    assert cheap.attributes["gen_ai.usage.input_tokens"] == 11
    assert cheap.end_time <= second.start_time            # the answer's call ended before its second opinion began
    assert strong.end_time <= third.start_time and request.attributes["cascade.escalated"] is True


async def test_shipped_quality_match_takes_gpt4o_answer_without_a_second_opinion(traced_router, fake_provider, otel):
    """Nothing is above GPT-4o: the shipped quality-match (check_last_rung: false) pays one
    DeepSeek-Coder-V2 call per request, for DeepSeek-V2's answer only."""
    fake_provider.script("deepseek-chat", answer("The answer is (B)."))
    fake_provider.script("deepseek-coder", answer("The answer is (C)."))
    fake_provider.script("gpt-4o", answer("The answer is (A)."))
    router = traced_router("quality-match")
    resp = await router.acomplete([{"role": "user", "content": "Which is right? A. x  B. y  C. z"}])
    assert [a.status for a in resp.cascade.attempts] == ["second_opinion", "check_failed", "ok"]
    assert resp.choices[0].message.content == "The answer is (A)."
    assert fake_provider.tally["deepseek-coder"].n_requests == 1


async def test_a_streamed_request_is_traced_when_its_stream_ends(traced_router, fake_provider, otel):
    fake_provider.script("deepseek-chat", answer("streamed answer", prompt_tokens=9, completion_tokens=4))
    router = traced_router(parse_policy("extends: default\nname: d\nescalation: {stream_unchecked: true}\n",
                                        source="d.yaml"))
    stream = await router.acomplete(PROMPT, stream=True)
    assert otel[0].get_finished_spans() == ()            # the request span ends with its stream
    async for _ in stream:
        pass
    request, [attempt] = by_name(otel[0].get_finished_spans())
    assert request.attributes["gen_ai.usage.input_tokens"] == 9
    assert request.attributes["gen_ai.usage.output_tokens"] == 4
    assert attempt.attributes["gen_ai.response.model"] == "deepseek-chat"
    assert attempt.attributes["cascade.status"] == "ok"
    assert tuple(request.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert "gen_ai.input.messages" not in request.attributes


async def test_prompt_and_answer_text_only_when_enabled(traced_router, fake_provider, otel):
    fake_provider.script("deepseek-chat", answer("the answer text"))
    router = traced_router(capture_content=True)
    await router.acomplete(PROMPT)
    request, _ = by_name(otel[0].get_finished_spans())
    assert "sqrt(2) is irrational" in request.attributes["gen_ai.input.messages"]
    assert json.loads(request.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "the answer text"


async def test_a_failed_request_ends_its_span_in_error_without_the_key(traced_router, fake_provider, otel):
    fake_provider.script("deepseek-chat", http_error(401))
    fake_provider.script("gpt-4o", http_error(401))
    strict = parse_policy("extends: default\nname: s\nescalation: {on_exhausted: raise}\n", source="s.yaml")
    router = traced_router(strict)
    with pytest.raises(EscalationExhausted):
        await router.acomplete(PROMPT)
    request, attempts = by_name(otel[0].get_finished_spans())
    assert request.status.is_ok is False and request.attributes["cascade.outcome"] == "error"
    assert attempts and all(s.attributes["error.type"] == "AuthenticationError" for s in attempts)
    text = json.dumps([dict(s.attributes) for s in (request, *attempts)]) + str(request.status.description)
    assert not any(key in text for key in KEYS.values())


async def test_a_request_refused_by_a_team_cap_is_a_span_naming_the_level(traced_router, fake_provider, otel):
    from cascade import Principal
    from policies.errors import BudgetExceeded
    capped = parse_policy("extends: default\nname: c\nbudgets: {at_cap: reject, per_team: [{window: day, usd: 0}]}\n",
                          source="c.yaml")
    router = traced_router(capped)
    with pytest.raises(BudgetExceeded):
        await router.acomplete(PROMPT, user=Principal("alice", team="ml"))
    [span] = otel[0].get_finished_spans()
    assert span.attributes["cascade.outcome"] == "refused" and span.attributes["cascade.budget.scope"] == "team"
    assert "team 'ml'" in span.attributes["cascade.reason"] and not span.status.is_ok
    assert fake_provider.tally["deepseek-chat"].n_requests == 0


def test_import_cascade_does_not_import_opentelemetry():
    code = "import sys, cascade, cascade.router; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_sdk_the_router_refuses_with_a_typed_error(tmp_path):
    (tmp_path / "opentelemetry").mkdir()              # shadows the installed package: `opentelemetry.sdk` is missing
    (tmp_path / "opentelemetry" / "__init__.py").write_text("")
    policy = tmp_path / "p.yaml"
    policy.write_text(OTEL_POLICY)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from cascade import Router\n"
            "from cascade.extras import MissingExtra\n"
            "try:\n    Router(sys.argv[2], budget_store='memory://')\n"
            "except MissingExtra as exc:\n    print('MissingExtra:', exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(policy)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "MissingExtra: telemetry: {opentelemetry: true} needs opentelemetry-sdk" in out.stdout
    assert "pip install 'deepseek-cascade[otel]'" in out.stdout


def test_an_unknown_exporter_is_a_config_error(monkeypatch):
    from policies.errors import ConfigError
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER='otlp'.*pip install opentelemetry-exporter-otlp"):
        OpenTelemetry.from_environment(load_policy("default").catalog)


def test_console_exporter_prints_genai_spans(fake_provider, tmp_path):
    """The issue's bar: ``telemetry: {opentelemetry: true}`` and ``OTEL_TRACES_EXPORTER=console``."""
    fake_provider.script("deepseek-chat", answer("4", prompt_tokens=17, completion_tokens=2))
    policy = tmp_path / "traced.yaml"
    policy.write_text(OTEL_POLICY)
    code = ("import sys; from cascade import Router\n"
            "r = Router(sys.argv[1], budget_store='memory://')\n"
            "print(r.complete([{'role': 'user', 'content': 'What is 2+2?'}]).choices[0].message.content)\n"
            "r.close()\n")
    env = {**os.environ, **provider_env(fake_provider.url), "OTEL_TRACES_EXPORTER": "console",
           "OTEL_SERVICE_NAME": "cascade-test"}
    env.pop("OTEL_METRICS_EXPORTER", None)
    out = subprocess.run([sys.executable, "-c", code, str(policy)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, _, rest = out.stdout.partition("\n")
    assert first == "4"
    decoder, spans, i = json.JSONDecoder(), [], rest.find("{")
    while i != -1:
        span, end = decoder.raw_decode(rest, i)
        spans.append(span)
        i = rest.find("{", end)
    request = next(s for s in spans if s["parent_id"] is None)
    assert request["attributes"]["gen_ai.request.model"] == "deepseek-chat"
    assert request["attributes"]["gen_ai.usage.input_tokens"] == 17
    assert request["resource"]["attributes"]["service.name"] == "cascade-test"
    assert len(spans) == 2 and spans[0]["parent_id"] is not None        # the attempt, then the request
    assert not any(key in out.stdout for key in KEYS.values())


def test_serve_otel_switches_it_on_whatever_the_policy_says(monkeypatch):
    from cascade.server.app import ServerSettings
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    for otel, enabled in ((True, True), (False, False)):
        router = ServerSettings(policy="default", budget_store="memory://", otel=otel).make_router()
        try:
            assert router.services.telemetry.enabled is enabled
        finally:
            router.close()


async def test_a_cached_answer_is_a_span_marked_cache_hit(traced_router, fake_provider, otel):
    policy = parse_policy("extends: default\nname: cached\ncache: {store: 'memory://'}\n")
    fake_provider.script("deepseek-chat", answer("Because sqrt(2)=p/q leads to a contradiction."))
    router = traced_router(policy)
    for _ in range(2):
        await router.acomplete(PROMPT, temperature=0)
    requests = [s for s in otel[0].get_finished_spans() if s.parent is None]
    assert [s.attributes.get("cascade.cache_hit") for s in requests] == [False, True]
    assert requests[1].attributes["cascade.cost_usd"] == 0
