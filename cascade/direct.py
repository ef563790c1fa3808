"""The direct transport: OpenAI-compatible chat completions without litellm's per-call pipeline.

DeepSeek's and OpenAI's APIs take the OpenAI request as it is, so for models whose catalog entry
says ``transport: direct`` (providers ``deepseek/`` and ``openai/``), a non-streaming call is one
POST of the request body on a pooled aiohttp session (one per event loop), and the answer is
parsed into an OpenAI-shaped :class:`cascade.calls.ChatCompletion` (attribute access like litellm's
``ModelResponse``): litellm is never imported. One call costs about 0.4 ms of CPU against 3.5 ms
through litellm (``benchmarks/bench_overhead.py``), which is what a server in front of many requests
pays (``benchmarks/bench_server.py``). Other providers and streaming stay on litellm. Errors go through the same :func:`cascade.provider_errors.map_provider_error`, so a
429 is a ``RateLimitError`` with its Retry-After, a dropped connection a
``ProviderConnectionError``, and no key is ever in a message.
"""
from __future__ import annotations

import asyncio
import atexit
import functools
import json
import os
import time
import weakref
from typing import Any

from policies.errors import InvalidRequestError
from policies.schema import DIRECT_PROVIDERS, speaks_direct

from cascade.calls import CallResult, CallSpec, ChatCompletion, check_call_args, estimate_with_tokenizer, make_result
from cascade.provider_errors import map_provider_error

# provider prefix -> (environment variable litellm reads for the base URL, litellm's default base,
#                     environment variable of the key)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "deepseek": ("DEEPSEEK_API_BASE", "https://api.deepseek.com/beta", "DEEPSEEK_API_KEY"),
    "openai": ("OPENAI_API_BASE", "https://api.openai.com/v1", "OPENAI_API_KEY"),
}
assert set(PROVIDERS) == DIRECT_PROVIDERS
_MAX_ERROR_BODY = 4096
_AT_EXIT = None
_SESSIONS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()


class ProviderHTTPError(Exception):
    """A non-2xx answer of the provider, before mapping (``status_code``, ``headers``, ``body``)."""

    def __init__(self, status_code: int, headers: dict[str, str], body: str) -> None:
        super().__init__(f"HTTP {status_code}: {body[:_MAX_ERROR_BODY]}")
        self.status_code, self.headers, self.body = status_code, headers, body


class MalformedResponse(json.JSONDecodeError):
    """A 200 whose body is not a chat completion (mapped like a broken connection)."""


def endpoint(litellm_model: str, api_base: str | None) -> str:
    """The chat-completions URL, as litellm builds it: the base (argument, else the provider's
    environment variable, else its default) with ``/chat/completions`` appended once."""
    env_base, default_base, _ = PROVIDERS[litellm_model.partition("/")[0]]
    base = (api_base or os.environ.get(env_base) or default_base).rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


async def acall(*, litellm_model: str, messages: list, api_base: str | None, api_key: str | None,
                timeout_s: float, params: dict, model_alias: str, stream: bool = False) -> CallResult:
    """One non-streaming call; returns a :class:`cascade.calls.CallResult`."""
    if stream:
        raise InvalidRequestError("the direct transport does not stream; the litellm transport does")
    if not speaks_direct(litellm_model):
        raise InvalidRequestError(f"the direct transport speaks {sorted(PROVIDERS)}, not {litellm_model!r}")
    check_call_args(messages, params)
    call = CallSpec(litellm_model, messages, api_base, api_key, timeout_s, params, model_alias)
    provider, _, name = litellm_model.partition("/")
    key = api_key or os.environ.get(PROVIDERS[provider][2])
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {**params, "model": name, "messages": messages}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            payload = await _post(endpoint(litellm_model, api_base), body, headers)
        return result_of_payload(payload, started=started, call=call)
    except Exception as exc:  # noqa: BLE001 - mapped; CancelledError passes through
        raise map_provider_error(exc, model=model_alias, secrets=[key]) from exc


def result_of_payload(payload: dict, *, started: float, call: CallSpec) -> CallResult:
    """The CallResult of an OpenAI chat.completion body (usage estimated with the bundled tokenizer
    when the provider sent none)."""
    try:
        response = ChatCompletion.model_validate(payload)
    except ValueError as exc:
        raise MalformedResponse(f"the provider's 200 is not a chat completion: {exc}", "", 0) from exc
    if not response.choices:
        raise MalformedResponse("the provider's 200 has no choices", "", 0)
    choice = response.choices[0]
    from cascade.confidence import tokens_of
    return make_result(response, choice.message.content or "", choice.finish_reason, response.usage,
                       started=started, model_alias=call.model_alias, litellm_model=call.litellm_model,
                       messages=call.messages, estimate=estimate_with_tokenizer,
                       logprobs=tokens_of(getattr(choice, "logprobs", None)))


async def _post(url: str, body: dict, headers: dict[str, str]) -> dict:
    """POST and parse; the caller's ``asyncio.timeout`` bounds it all."""
    async with _session().post(url, json=body, headers=headers, proxy=_proxy_for(url)) as resp:
        raw = await resp.read()
        if resp.status >= 300:
            text = raw[:_MAX_ERROR_BODY].decode("utf-8", "replace")
            raise ProviderHTTPError(resp.status, {k.lower(): v for k, v in resp.headers.items()}, text)
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise MalformedResponse(f"the provider's 200 is not JSON: {exc}", raw.decode("utf-8", "replace")[:200], 0) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list) or not payload["choices"]:
        raise MalformedResponse("the provider's 200 has no choices", str(payload)[:200], 0)
    return payload


def _session() -> Any:
    """This event loop's pooled session (created on first use)."""
    import aiohttp
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        global _AT_EXIT
        if not _AT_EXIT:
            _AT_EXIT = atexit.register(_forget_closed_loops)  # loops closed without aclose(): no warnings
        _forget_closed_loops()
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        # trust_env=False: aiohttp would re-read the proxy variables and ~/.netrc in a thread on every
        # request; the proxy is looked up once per URL instead (_proxy_for)
        # no timeout of aiohttp's own: each call's asyncio.timeout bounds it (acall)
        session = aiohttp.ClientSession(connector=connector, trust_env=False, raise_for_status=False,
                                        skip_auto_headers=("User-Agent",),
                                        timeout=aiohttp.ClientTimeout(total=None))
        _SESSIONS[loop] = session
    return session


def _forget_closed_loops() -> None:
    """Drop the sessions of event loops that have closed (their sockets went with the loop); marking
    their connectors closed keeps aiohttp from warning about them later."""
    for loop in [loop for loop in _SESSIONS if loop.is_closed()]:
        session = _SESSIONS.pop(loop)
        connector = session.connector
        if connector is not None:
            try:
                connector._close()
            except Exception:  # noqa: BLE001 - best effort on a dead loop
                pass


@functools.lru_cache(maxsize=64)
def _proxy_for(url: str) -> str | None:
    """The HTTP(S)_PROXY for ``url`` from the environment (NO_PROXY honoured), read once per URL."""
    import urllib.request
    scheme, host = url.split("://", 1)[0], url.split("://", 1)[-1].split("/", 1)[0]
    if urllib.request.proxy_bypass(host.rsplit(":", 1)[0]):
        return None
    return urllib.request.getproxies().get(scheme)


async def aclose() -> None:
    """Close the running loop's session (the Router and the server call this when they close)."""
    loop = asyncio.get_running_loop()
    session = _SESSIONS.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()
