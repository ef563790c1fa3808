"""The served endpoint with telemetry on: a bearer key's principal is charged at every level, its request is
a GenAI span, and neither the bearer key nor a provider key appears in any span."""
from __future__ import annotations

import json

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from cascade.otel import OpenTelemetry  # noqa: E402
from policies.budget import Principal  # noqa: E402
from policies.loader import load_policy  # noqa: E402
from tests.cascade.router.conftest import KEYS  # noqa: E402
from tests.harness.fake_provider import answer  # noqa: E402

BEARER = "sk-cascade-served-team-0001"


def test_a_keyed_request_is_charged_per_level_and_traced_without_keys(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=12, completion_tokens=2))
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = OpenTelemetry(load_policy("default").catalog, tracer_provider=tracer_provider,
                              meter_provider=MeterProvider(), secrets=list(KEYS.values()))
    served = serve(keys={BEARER: {"user": "ana", "team": "geo", "org": "acme", "name": "ana-web"}},
                   telemetry=telemetry, team_cap_usd=1.0, cap_window="day")
    body = {"model": "cascade", "messages": [{"role": "user", "content": "Capital of France?"}]}
    resp = httpx.post(served.base_url + "/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {BEARER}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    cost = resp.json()["cascade"]["cost_usd"]
    assert resp.json()["cascade"]["user"] == "ana" and cost > 0
    [team] = served.router.store.snapshot(user=Principal(team="geo"), caps=served.router.caps).usages
    assert team.spent_usd == pytest.approx(cost)
    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.parent is None]
    assert request.attributes["gen_ai.usage.input_tokens"] == 12 and len(finished) == 2
    text = json.dumps([dict(s.attributes) for s in finished])
    assert BEARER not in text and not any(k in text for k in KEYS.values())
    tracer_provider.shutdown()


def test_serve_otel_prints_console_spans_by_shutdown(spawn_fake_provider, spawn_serve, monkeypatch):
    """``cascade serve --otel`` with ``OTEL_TRACES_EXPORTER=console``: the spans are printed (flushed when the
    server stops at the latest)."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = spawn_fake_provider({"fallback": {"default": {"kind": "answer", "content": "4", "prompt_tokens": 21,
                                                             "completion_tokens": 1}}})
    [served] = spawn_serve(provider.url, ["--otel", "--budget-store", "memory://", "--transport", "direct"])
    body = {"model": "cascade", "messages": [{"role": "user", "content": "2+2?"}]}
    assert httpx.post(served.url + "/v1/chat/completions", json=body, timeout=60).status_code == 200
    served.stop()
    log = served.log.read_text()
    assert '"gen_ai.request.model": "deepseek-chat"' in log and '"gen_ai.usage.input_tokens": 21' in log
    assert not any(key in log for key in KEYS.values())


TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def _in_memory_telemetry():
    spans, tracer_provider = InMemorySpanExporter(), TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = OpenTelemetry(load_policy("default").catalog, tracer_provider=tracer_provider,
                              meter_provider=MeterProvider(), secrets=list(KEYS.values()))
    return spans, tracer_provider, telemetry


@pytest.mark.parametrize("stream", [False, True])
def test_an_incoming_traceparent_makes_the_request_span_join_the_callers_trace(serve, fake_provider, stream):
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=12, completion_tokens=2))
    spans, tracer_provider, telemetry = _in_memory_telemetry()
    served = serve(telemetry=telemetry)
    body = {"model": "cascade", "stream": stream, "messages": [{"role": "user", "content": "Capital of France?"}]}
    headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    resp = httpx.post(served.base_url + "/chat/completions", json=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    finished = spans.get_finished_spans()
    [request] = [s for s in finished if s.name.startswith("chat ") and s.parent is not None
                 and s.parent.span_id == int(PARENT_ID, 16)]
    assert request.parent.is_remote and request.context.trace_id == int(TRACE_ID, 16)
    assert {s.context.trace_id for s in finished} == {int(TRACE_ID, 16)} and len(finished) == 2
    # without the header, the next request is a root of a trace of its own
    spans.clear()
    assert httpx.post(served.base_url + "/chat/completions", json=body, timeout=60).status_code == 200
    [root] = [s for s in spans.get_finished_spans() if s.parent is None]
    assert root.context.trace_id != int(TRACE_ID, 16)
    tracer_provider.shutdown()


def test_a_refusal_span_joins_the_callers_trace_and_a_bad_traceparent_is_ignored(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=10, completion_tokens=100_000))
    spans, tracer_provider, telemetry = _in_memory_telemetry()
    served = serve(telemetry=telemetry, user_cap_usd=0.02, cap_window="day")
    body = {"model": "cascade", "user": "zed", "max_tokens": 16, "messages": [{"role": "user", "content": "q"}]}
    bad = httpx.post(served.base_url + "/chat/completions", json=body, headers={"traceparent": "00-zz-not-a-trace"},
                     timeout=60)
    assert bad.status_code == 200
    [root] = [s for s in spans.get_finished_spans() if s.parent is None]          # a new root, as without a header
    assert {s.context.trace_id for s in spans.get_finished_spans()} == {root.context.trace_id}
    refused = httpx.post(served.base_url + "/chat/completions", json=body, timeout=60,
                         headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert refused.status_code == 429
    [span] = [s for s in spans.get_finished_spans() if s.attributes.get("cascade.outcome") == "refused"]
    assert span.context.trace_id == int(TRACE_ID, 16) and span.parent.span_id == int(PARENT_ID, 16)
    tracer_provider.shutdown()
