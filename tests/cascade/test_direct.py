"""cascade.direct (transport: direct) against the fake provider: the same answers, usage and typed
errors as the litellm transport (tests/cascade/test_providers.py), over real HTTP."""
from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from cascade import direct, providers
from cascade.router import Router
from policies.errors import (AuthenticationError, BadRequestError, ConfigError, ContextWindowExceeded,
                             InvalidRequestError, ProviderConnectionError, ProviderError,
                             ProviderTimeout, RateLimitError, ServerError)
from policies.loader import load_policy
from policies.schema import ModelSpec, with_transport
from tests.cascade.router.conftest import FixedScore, provider_env
from tests.cascade.test_providers import KEY, MESSAGES, PROVIDERS, failed_call, kwargs
from tests.harness.fake_provider import (answer, context_length_exceeded, drop, http_error, malformed,
                                         rate_limited, timeout, truncated)


@pytest.fixture(autouse=True)
async def close_sessions():
    """Each test's event loop closes its direct-transport session, as the Router and server do."""
    yield
    await direct.aclose()


async def fails(server, behaviour, provider="openai", **over) -> ProviderError:
    error = await failed_call(direct.acall, server, behaviour, provider, **over)
    assert "SECRET" not in str(error)
    return error


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_answer_usage_and_request_body_match_litellm(fake_provider, provider):
    fake_provider.script("m", answer("Paris", prompt_tokens=123, completion_tokens=4))
    params = {"temperature": 0.0, "max_tokens": 50}
    got = await direct.acall(**kwargs(fake_provider, provider, params=params))
    via_litellm = await providers.acall(**kwargs(fake_provider, provider, params=params))
    for result in (got, via_litellm):
        assert (result.content, result.finish_reason) == ("Paris", "stop")
        assert (result.prompt_tokens, result.completion_tokens, result.usage_reported) == (123, 4, True)
        assert result.response.choices[0].message.content == "Paris"
        assert (result.model_alias, result.litellm_model) == ("alias", f"{provider}/m")
    ours_body, theirs_body = got.response.model_dump(), via_litellm.response.model_dump()   # the same OpenAI JSON
    for body in (ours_body, theirs_body):
        body.pop("id"), body.pop("created")
        body["usage"] = {k: body["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        body["choices"] = [{"index": c["index"], "finish_reason": c["finish_reason"],
                            "message": {k: c["message"][k] for k in ("role", "content")}} for c in body["choices"]]
    assert ours_body == theirs_body
    ours, theirs = fake_provider.tally["m"].requests
    assert ours.path == theirs.path and ours.authorization == theirs.authorization == f"Bearer {KEY}"
    for key in ("model", "messages", "temperature", "max_tokens"):
        assert ours.body[key] == theirs.body[key]


async def test_truncated_answer_and_estimated_usage(fake_provider):
    fake_provider.script("m", truncated("abcdefghij"))
    result = await direct.acall(**kwargs(fake_provider))
    assert (result.content, result.finish_reason) == ("abcde", "length")


async def test_deepseek_base_and_key_from_the_environment(fake_provider, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_BASE", fake_provider.base_url)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-env-SECRET-999")
    result = await direct.acall(**kwargs(fake_provider, "deepseek", model="deepseek-chat",
                                         api_base=None, api_key=None))
    assert result.content.startswith("Answer to:")
    (request,) = fake_provider.tally["deepseek-chat"].requests
    assert request.path == "/chat/completions"
    assert request.authorization == "Bearer sk-env-SECRET-999"


@pytest.mark.parametrize("base, url", [
    ("http://h:1/v1", "http://h:1/v1/chat/completions"),
    ("http://h:1/v1/", "http://h:1/v1/chat/completions"),
    ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions"),
])
def test_endpoint(base, url):
    assert direct.endpoint("openai/gpt-4o", base) == url


async def test_concurrent_calls_share_one_session(fake_provider):
    fake_provider.script("m", answer("ok", latency=0.05))
    results = await asyncio.gather(*(direct.acall(**kwargs(fake_provider)) for _ in range(40)))
    assert all(r.content == "ok" for r in results)
    assert fake_provider.tally["m"].n_completions == 40
    assert len(direct._SESSIONS) == 1
    await direct.aclose()
    assert not direct._SESSIONS


# ── faults: the same typed errors as the litellm transport ─────────────────────────────────

@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_with_retry_after(fake_provider, provider):
    error = await fails(fake_provider, rate_limited(7), provider)
    assert type(error) is RateLimitError and error.retryable
    assert (error.retry_after, error.status_code, error.model) == (7.0, 429, "alias")


async def test_429_with_http_date_or_without_retry_after(fake_provider):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (await fails(fake_provider, rate_limited(when))).retry_after <= 31
    fake_provider.tally.clear()
    assert (await fails(fake_provider, rate_limited(None))).retry_after is None


@pytest.mark.parametrize("behaviour, kind, status", [
    (http_error(500), ServerError, 500), (http_error(503), ServerError, 503),
    (http_error(401), AuthenticationError, 401), (http_error(403), AuthenticationError, 403),
    (context_length_exceeded(), ContextWindowExceeded, 400),
    (http_error(400), BadRequestError, 400), (http_error(404), BadRequestError, 404),
    (drop(), ProviderConnectionError, None), (malformed(), ProviderConnectionError, None),
])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fault_maps_to_the_same_type_as_litellm(fake_provider, provider, behaviour, kind, status):
    error = await fails(fake_provider, behaviour, provider)
    assert type(error) is kind and error.status_code == status
    fake_provider.tally.clear()
    fake_provider.script("m", behaviour)
    with pytest.raises(ProviderError) as via_litellm:
        await providers.acall(**kwargs(fake_provider, provider))
    assert type(via_litellm.value) is kind


async def test_timeout(fake_provider):
    started = time.perf_counter()
    error = await fails(fake_provider, timeout(30), timeout_s=0.3)
    assert type(error) is ProviderTimeout and error.retryable
    assert time.perf_counter() - started < 10


async def test_connection_refused():
    with pytest.raises(ProviderConnectionError):
        await direct.acall(litellm_model="openai/m", messages=MESSAGES, api_base="http://127.0.0.1:9/v1",
                           api_key=KEY, timeout_s=5, params={}, model_alias="alias")


async def test_echoed_key_never_reaches_an_exception(fake_provider):
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}. Bearer {KEY}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    error = await fails(fake_provider, http_error(401, echo))
    assert type(error) is AuthenticationError and "[REDACTED]" in str(error)
    cause = error.__cause__
    assert "SECRET" not in f"{cause} {cause!r} {getattr(cause, 'body', '')}"


@pytest.mark.parametrize("over, match", [
    ({"stream": True}, "does not stream"),
    ({"litellm_model": "anthropic/claude"}, "speaks"),
    ({"messages": []}, "non-empty"),
    ({"params": {"api_key": "x"}}, "may not set"),
])
async def test_bad_calls_are_refused_before_any_request(fake_provider, over, match):
    with pytest.raises(InvalidRequestError, match=match):
        await direct.acall(**kwargs(fake_provider, **over))
    assert fake_provider.tally.n_requests == 0


# ── configuration ───────────────────────────────────────────────────────────────────────────

def test_catalog_refuses_direct_for_other_providers():
    spec = dict(litellm_model="anthropic/claude-3", price={"input_per_1m": 1, "output_per_1m": 1},
                context_window=8000, capabilities=["text"], strength=1, transport="direct")
    with pytest.raises(ValueError, match="transport: direct speaks"):
        ModelSpec.model_validate(spec)
    ModelSpec.model_validate({**spec, "transport": "litellm"})


def test_with_transport_switches_only_models_it_can_serve():
    policy = load_policy("default")
    switched = with_transport(policy, "direct")
    assert {m.transport for m in switched.catalog.values()} == {"direct"}
    assert with_transport(switched, "litellm").model_dump() == policy.model_dump()


def test_router_rejects_an_unknown_transport():
    with pytest.raises(ConfigError, match="transport must be"):
        Router("default", budget_store="memory://", transport="grpc")


async def test_router_over_the_direct_transport(fake_provider):
    fake_provider.script("deepseek-chat", answer("The answer is 4.", prompt_tokens=10, completion_tokens=5))
    router = Router("default", budget_store="memory://", classifier=FixedScore(0.0),
                    env=provider_env(fake_provider.url), transport="direct")
    try:
        resp = await router.acomplete([{"role": "user", "content": "What is 2+2?"}], max_tokens=20)
        trace = resp.cascade
        assert resp.choices[0].message.content == "The answer is 4."
        assert trace.model == "deepseek-v2" and not trace.escalated
        assert trace.attempts[0].prompt_tokens == 10 and trace.attempts[0].completion_tokens == 5
        assert router.store.total_spent() == pytest.approx(trace.cost_usd)
        assert fake_provider.tally["deepseek-chat"].n_completions == 1
        # a stream on a direct model goes through litellm
        stream = await router.acomplete([{"role": "user", "content": "What is 3+3?"}], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "The answer is 4."
    finally:
        await router.aclose()
    assert router.store.open_reservations() == 0
