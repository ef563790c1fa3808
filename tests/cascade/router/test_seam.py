"""One transport seam and one finished trace: MockTransport at the seam, a direct-only Router that never
imports litellm, error lines that carry their latency, Router settings apart from its collaborators."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from cascade.router import Router
from cascade.services import RouterSettings, build_services
from cascade.transport import DirectTransport, LiteLLMTransport, MockTransport
from policies.errors import EscalationExhausted, ServerError
from policies.loader import load_policy, parse_policy
from tests.cascade.router.conftest import FixedScore, provider_env, user_msg
from tests.harness.scripts import ModelScript, answer, http_error

ONE_RUNG = """
extends: default
name: one-rung
routing: {thresholds: []}
escalation:
  ladders: {text: [deepseek-v2]}
  on_exhausted: raise
retries: {server_error: {attempts: 1}}
"""


async def test_mock_transport_answers_every_model_through_the_walk():
    calls = []

    def handler(call):
        calls.append(call.model_alias)
        return "" if call.model_alias == "deepseek-v2" else "The answer is 4."

    router = Router("default", budget_store="memory://", classifier=FixedScore(0.0),
                    transport=MockTransport(handler))
    resp = await router.acomplete(user_msg("What is 2+2?"))
    assert calls == ["deepseek-v2", "gpt-4o"]                  # the empty cheap answer failed non_empty
    assert (resp.cascade.model, resp.cascade.escalated, resp.cascade.outcome) == ("gpt-4o", True, "ok")
    assert resp.choices[0].message.content == "The answer is 4."
    assert [a.status for a in resp.cascade.attempts] == ["check_failed", "ok"]
    await router.aclose()


async def test_mock_transport_errors_are_provider_errors():
    def handler(call):
        raise ServerError("upstream 503", model=call.model_alias, status_code=503)

    router = Router(parse_policy(ONE_RUNG, source="one.yaml"), budget_store="memory://",
                    classifier=FixedScore(0.0), transport=MockTransport(handler))
    with pytest.raises(EscalationExhausted, match="ServerError"):
        await router.acomplete(user_msg("hi"))


async def test_error_trace_lines_carry_their_latency(fake_provider, tmp_path):
    """A one-rung policy with on_exhausted: raise and a provider answering 503: the trace line of the
    failed request records how long it took (it used to be written before the latency was set)."""
    fake_provider.script("deepseek-chat", ModelScript(default=http_error(503, latency=0.2)))
    traces = tmp_path / "t.jsonl"
    router = Router(parse_policy(ONE_RUNG, source="one.yaml"), budget_store="memory://", classifier=FixedScore(0.0),
                    env=provider_env(fake_provider.url), trace_path=traces)
    with pytest.raises(EscalationExhausted):
        await router.acomplete(user_msg("hi"))
    (line,) = [json.loads(x) for x in traces.read_text().splitlines()]
    assert line["outcome"] == "error" and line["error"].startswith("EscalationExhausted")
    assert line["latency_s"] >= 0.2
    assert line["attempts"][-1]["status"] == "error" and line["attempts"][-1]["latency_s"] >= 0.2
    await router.aclose()


def test_transports_are_chosen_once_per_catalog_model():
    services = build_services(load_policy("default"), RouterSettings(budget_store="memory://", transport="direct"),
                              classifier=FixedScore(0.0))
    assert isinstance(services.transports["deepseek-v2"], DirectTransport)
    assert isinstance(services.transports["gpt-4o"], DirectTransport)
    assert services.transports["deepseek-v2"] is services.transports["gpt-4o"]
    litellm_only = build_services(load_policy("default"), RouterSettings(budget_store="memory://", transport="litellm"),
                                  classifier=FixedScore(0.0))
    assert all(isinstance(t, LiteLLMTransport) for t in litellm_only.transports.values())


def test_settings_and_collaborators_are_apart():
    with pytest.raises(TypeError, match="budget_stor"):
        Router("default", budget_stor="memory://")
    settings = RouterSettings(budget_store="memory://", global_cap_usd=5.0)
    router = Router("default", settings, classifier=FixedScore(0.3))
    assert router.caps and router.classifier.value == 0.3 and router.store.url.startswith("memory://")
    shared = Router("default", services=router.services)
    assert shared.store is router.store and shared.classifier is router.classifier
    router.close()


def test_a_direct_only_router_answers_without_importing_litellm(fake_provider):
    """``import cascade`` + ``Router(..., transport="direct")`` + the first answered request, in a fresh
    process: litellm is never imported (it costs 6-9 s here)."""
    code = textwrap.dedent(f"""
        import json, sys, time
        started = time.perf_counter()
        import cascade
        from cascade import Router
        router = Router("default", budget_store="memory://", transport="direct", env={provider_env(fake_provider.url)!r})
        resp = router.complete(messages=[{{"role": "user", "content": "What is 2+2?"}}])
        elapsed = time.perf_counter() - started
        print(json.dumps({{"litellm": "litellm" in sys.modules, "model": resp.cascade.model,
                          "text": resp.choices[0].message.content, "elapsed_s": elapsed}}))
        router.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["litellm"] is False, doc
    assert doc["model"] in ("deepseek-v2", "gpt-4o") and doc["text"]


async def test_a_missing_key_is_named_at_construction_and_fails_the_escalation_at_once(fake_provider):
    """OPENAI_API_KEY unset (and no OPENAI_API_BASE: the provider's own endpoint): Router() warns, and a
    request escalating to gpt-4o raises AuthenticationError naming the variable — no retry, no 500, no
    empty cheap answer passed off as the best one."""
    from cascade.router import MissingCredentialsWarning
    from policies.errors import AuthenticationError
    from tests.harness.fake_provider import empty
    fake_provider.script("deepseek-chat", empty())
    env = {"DEEPSEEK_API_BASE": fake_provider.url, "DEEPSEEK_API_KEY": "sk-test-deepseek-SECRET-1111"}
    with pytest.warns(MissingCredentialsWarning, match=r"gpt-4o \(set OPENAI_API_KEY\)"):
        router = Router("default", budget_store="memory://", classifier=FixedScore(0.0), env=env)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY is not set") as info:
        await router.acomplete(user_msg("What is 2+2?"))
    assert "gpt-4o" in str(info.value)
    assert fake_provider.tally["deepseek-chat"].n_requests == 1 and "gpt-4o" not in fake_provider.tally
    assert router.store.open_reservations() == 0
    await router.aclose()
