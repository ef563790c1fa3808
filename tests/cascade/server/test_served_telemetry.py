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
