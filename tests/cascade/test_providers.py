"""cascade.providers against the fake provider, through litellm and real HTTP."""
from __future__ import annotations

import asyncio
import email.utils
import json
import os
import subprocess
import sys
import time

import pytest

from cascade import providers
from cascade.providers import (AsyncCallStream, CallResult, acall, call, map_provider_error,
                               parse_retry_after, redact)
from policies.errors import (AuthenticationError, BadRequestError, ContextWindowExceeded,
                             InvalidRequestError, ProviderConnectionError, ProviderError,
                             ProviderTimeout, RateLimitError, ServerError)
from tests.harness.fake_provider import (ModelScript, answer, context_length_exceeded, drop,
                                         http_error, malformed, rate_limited, timeout, truncated)

KEY = "sk-test-SECRET-abc123"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
PROVIDERS = ["openai", "deepseek"]   # litellm's openai SDK path and its own httpx handler


def kwargs(server, provider: str = "openai", model: str = "m", **over):
    base = dict(litellm_model=f"{provider}/{model}", messages=MESSAGES, api_base=server.url,
                api_key=KEY, timeout_s=5.0, params={}, model_alias="alias")
    base.update(over)
    return base


async def failed_call(fn, server, behaviour, provider="openai", **over) -> ProviderError:
    """The ProviderError of one call of ``fn`` (a transport's ``acall``) meeting ``behaviour``."""
    server.script("m", behaviour)
    with pytest.raises(ProviderError) as info:
        await fn(**kwargs(server, provider, **over))
    assert server.tally["m"].n_requests == 1, "the transport must not retry on its own"
    assert isinstance(info.value.__cause__, BaseException)
    return info.value


async def fails(server, behaviour, provider="openai", **over) -> ProviderError:
    return await failed_call(acall, server, behaviour, provider, **over)


# ── success ─────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("provider", PROVIDERS)
async def test_answer_and_usage_match_the_provider_tally(fake_provider, provider):
    fake_provider.script("m", answer("Paris", prompt_tokens=123, completion_tokens=4))
    result = await acall(**kwargs(fake_provider, provider, params={"temperature": 0.0}))
    assert isinstance(result, CallResult)
    assert (result.content, result.finish_reason) == ("Paris", "stop")
    assert (result.prompt_tokens, result.completion_tokens) == (123, 4)
    assert result.usage_reported and result.latency_s > 0
    assert result.response.choices[0].message.content == "Paris"
    assert (result.model_alias, result.litellm_model) == ("alias", f"{provider}/m")
    (completion,) = fake_provider.tally["m"].completions
    assert (completion.prompt_tokens, completion.completion_tokens) == (123, 4)
    (request,) = fake_provider.tally["m"].requests
    assert request.body["temperature"] == 0.0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sync_twin(fake_provider, provider):
    fake_provider.script("m", truncated("abcdefghij"))
    result = call(**kwargs(fake_provider, provider))
    assert (result.content, result.finish_reason) == ("abcde", "length")
    assert result.completion_tokens == fake_provider.tally["m"].completion_tokens


async def test_openai_model_string_uses_v1_path_and_bearer_key(fake_provider):
    await acall(**kwargs(fake_provider, "openai", model="deepseek-chat"))
    (request,) = fake_provider.tally["deepseek-chat"].requests
    assert request.path == "/v1/chat/completions"
    assert request.authorization == f"Bearer {KEY}"


async def test_deepseek_model_string_with_env_base_and_key(fake_provider, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_BASE", fake_provider.base_url)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-env-SECRET-999")
    result = await acall(**kwargs(fake_provider, "deepseek", model="deepseek-chat",
                                  api_base=None, api_key=None))
    assert result.content.startswith("Answer to:")
    (request,) = fake_provider.tally["deepseek-chat"].requests
    assert request.path == "/chat/completions"       # DEEPSEEK_API_BASE + /chat/completions
    assert request.authorization == "Bearer sk-env-SECRET-999"


async def test_concurrent_calls(fake_provider):
    fake_provider.script("m", answer("ok", latency=0.05))
    results = await asyncio.gather(*(acall(**kwargs(fake_provider)) for _ in range(40)))
    assert all(r.content == "ok" for r in results)
    tally = fake_provider.tally["m"]
    assert tally.n_completions == 40
    assert sum(r.prompt_tokens for r in results) == tally.prompt_tokens


# ── faults ──────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_with_retry_after(fake_provider, provider):
    error = await fails(fake_provider, rate_limited(7), provider)
    assert type(error) is RateLimitError and error.retryable
    assert (error.retry_after, error.status_code, error.model) == (7.0, 429, "alias")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_without_retry_after(fake_provider, provider):
    error = await fails(fake_provider, rate_limited(None), provider)
    assert type(error) is RateLimitError and error.retry_after is None


async def test_429_with_http_date_retry_after(fake_provider):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = await fails(fake_provider, rate_limited(when))
    assert 25 <= error.retry_after <= 31


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_server_error(fake_provider, provider, status):
    error = await fails(fake_provider, http_error(status), provider)
    assert type(error) is ServerError and error.status_code == status and error.retryable


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_timeout(fake_provider, provider):
    started = time.perf_counter()
    error = await fails(fake_provider, timeout(30), provider, timeout_s=0.3)
    assert type(error) is ProviderTimeout and error.retryable
    assert time.perf_counter() - started < 10   # generous: only checks the call did not hang


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_dropped_connection(fake_provider, provider):
    error = await fails(fake_provider, drop(), provider)
    assert type(error) is ProviderConnectionError and error.retryable   # litellm says "500"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_malformed_body_is_a_connection_error(fake_provider, provider):
    error = await fails(fake_provider, malformed(), provider)
    assert type(error) is ProviderConnectionError


async def test_connection_refused():
    with pytest.raises(ProviderConnectionError):
        await acall(litellm_model="openai/m", messages=MESSAGES, api_base="http://127.0.0.1:9/v1",
                    api_key=KEY, timeout_s=5, params={}, model_alias="alias")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors(fake_provider, provider, status):
    error = await fails(fake_provider, http_error(status), provider)
    assert type(error) is AuthenticationError and not error.retryable


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_context_length_exceeded(fake_provider, provider):
    error = await fails(fake_provider, context_length_exceeded(), provider)
    assert type(error) is ContextWindowExceeded and isinstance(error, BadRequestError)
    assert error.status_code == 400 and not error.retryable


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_bad_requests(fake_provider, status):
    error = await fails(fake_provider, http_error(status))
    assert type(error) is BadRequestError and error.status_code == status


def test_sync_errors_are_mapped_too(fake_provider):
    fake_provider.script("m", ModelScript(queue=[rate_limited(3), drop()]))
    with pytest.raises(RateLimitError) as info:
        call(**kwargs(fake_provider, "deepseek"))
    assert info.value.retry_after == 3.0
    with pytest.raises(ProviderConnectionError):
        call(**kwargs(fake_provider, "deepseek"))


# ── keys never leak ─────────────────────────────────────────────────────────────────────────

def _all_text(error: BaseException) -> str:
    parts = [str(error), repr(error), *map(str, error.args)]
    cause = error.__cause__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("sync", [False, True])
async def test_key_reaches_server_but_never_an_exception(fake_provider, provider, sync):
    echo = {"error": {"message": f"Incorrect API key provided: {KEY}. Bearer {KEY}",
                      "type": "invalid_request_error", "code": "invalid_api_key"}}
    fake_provider.script("m", http_error(401, echo))
    with pytest.raises(AuthenticationError) as info:
        if sync:
            call(**kwargs(fake_provider, provider))
        else:
            await acall(**kwargs(fake_provider, provider))
    assert fake_provider.tally["m"].requests[0].authorization == f"Bearer {KEY}"
    assert "SECRET" not in _all_text(info.value)
    assert "[REDACTED]" in str(info.value)


async def test_env_key_is_redacted(fake_provider, monkeypatch):
    monkeypatch.setenv("DEEPSEEK_API_BASE", fake_provider.base_url)
    monkeypatch.setenv("DEEPSEEK_API_KEY", "plainvalue-SECRET-xyz")   # not sk-shaped
    fake_provider.script("deepseek-chat", http_error(401, "bad key plainvalue-SECRET-xyz"))
    with pytest.raises(AuthenticationError) as info:
        await acall(**kwargs(fake_provider, "deepseek", model="deepseek-chat", api_base=None,
                             api_key=None))
    assert "SECRET" not in _all_text(info.value)


# ── streaming ───────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_assembles_text_and_usage(fake_provider, provider):
    fake_provider.script("m", answer("The capital of France is Paris.", chunk_chars=5))
    stream = await acall(**kwargs(fake_provider, provider), stream=True)
    assert isinstance(stream, AsyncCallStream)
    pieces = []
    async for chunk in stream:
        pieces.append(chunk)
        if len(pieces) == 3:
            assert stream.text and "Paris" not in stream.text    # text so far
    result = await stream.result()
    assert result.content == "The capital of France is Paris." and result.finish_reason == "stop"
    (completion,) = fake_provider.tally["m"].completions
    assert (result.prompt_tokens, result.completion_tokens) == (completion.prompt_tokens,
                                                                completion.completion_tokens)
    assert result.usage_reported and result.first_chunk_s is not None
    assert json.loads(fake_provider.tally["m"].requests[0].raw_body)["stream_options"] == {
        "include_usage": True}


def test_sync_stream(fake_provider):
    fake_provider.script("m", answer("hello world"))
    stream = call(**kwargs(fake_provider, "deepseek"), stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello world"
    result = stream.result()
    assert result.content == "hello world"
    assert result.completion_tokens == fake_provider.tally["m"].completion_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_dropped_midway(fake_provider, provider):
    fake_provider.script("m", drop(after_chunks=2))
    stream = await acall(**kwargs(fake_provider, provider), stream=True)
    with pytest.raises(ProviderConnectionError):
        await stream.result()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_errors_before_first_chunk(fake_provider, provider):
    fake_provider.script("m", rate_limited(2))
    with pytest.raises(RateLimitError) as info:
        await acall(**kwargs(fake_provider, provider), stream=True)
    assert info.value.retry_after == 2.0


# ── pure parts ──────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text, secrets, expected", [
    ("key sk-abc123def456 here", (), "key [REDACTED] here"),
    ("Authorization: Bearer abcdefghijkl", (), "Authorization: Bearer [REDACTED]"),
    ("https://user:pa55word@host/v1", (), "https://[REDACTED]@host/v1"),
    ("my key is hunter22 ok", ("hunter22",), "my key is [REDACTED] ok"),
    ("AIzaSyA1234567890abcdefghijklmnop", (), "[REDACTED]"),
    ("nothing secret, task-1234567", (None, ""), "nothing secret, task-1234567"),
])
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


@pytest.mark.parametrize("value, expected", [
    ("7", 7.0), ("0.5", 0.5), (3, 3.0), ("-4", 0.0), ("soon", None), (None, None), ("nan", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future():
    when = email.utils.formatdate(1_000_100, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(100.0)


@pytest.mark.parametrize("exc, expected", [
    (asyncio.TimeoutError(), ProviderTimeout),
    (TimeoutError("slow"), ProviderTimeout),
    (ConnectionRefusedError(111, "refused"), ProviderConnectionError),
    (ConnectionResetError("reset"), ProviderConnectionError),
    (json.JSONDecodeError("bad", "{", 0), ProviderConnectionError),
    (ValueError("odd"), ProviderError),
])
def test_map_plain_exceptions(exc, expected):
    error = map_provider_error(exc, model="alias")
    assert type(error) is expected and error.model == "alias"


def test_map_keeps_our_errors_and_redacts_given_secrets():
    mine = ServerError("x", model="a")
    assert map_provider_error(mine, model="b") is mine
    error = map_provider_error(RuntimeError("token=tok_very_private_1"), model="a",
                               secrets=["tok_very_private_1"])
    assert "tok_very_private_1" not in str(error)


def test_reserved_params_are_refused(fake_provider):
    with pytest.raises(InvalidRequestError):
        call(**kwargs(fake_provider, params={"api_key": "sk-other"}))
    with pytest.raises(InvalidRequestError):
        call(**kwargs(fake_provider, messages=[]))


async def test_litellm_cost_calculation_skipped_only_inside_our_calls(fake_provider):
    litellm = providers.load_litellm()
    fake_provider.script("gpt-4o-mini", answer("ok", prompt_tokens=1000, completion_tokens=1000))
    ours = await acall(**kwargs(fake_provider, model="gpt-4o-mini"))
    assert ours.response._hidden_params.get("response_cost") is None
    theirs = await litellm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                       api_base=fake_provider.url, api_key=KEY, max_retries=0)
    assert theirs._hidden_params.get("response_cost", 0) > 0


def test_importing_providers_does_not_import_litellm():
    code = "import sys, cascade.providers; sys.exit('litellm' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
