"""The provider call layer: the one place litellm is called and its errors are mapped.

    acall(...) / call(...)              → CallResult (response, content, tokens, finish_reason, latency)
    acall(..., stream=True)             → AsyncCallStream (async iterator of chunks; await .result())
    call(..., stream=True)              → CallStream (iterator of chunks; .result())
    map_provider_error(exc, model=...)  → a ProviderError of policies.errors (never raises)
    redact(text, secrets)               → the text without API keys

Every litellm / openai / httpx / aiohttp / asyncio exception becomes one of::

    ProviderError                  anything else (not retryable)
    ├── RateLimitError             HTTP 429; retry_after from retry-after-ms / Retry-After
    ├── ProviderTimeout            litellm.Timeout (408), httpx / aiohttp / asyncio timeouts
    ├── ServerError                HTTP 5xx, 409
    ├── ProviderConnectionError    refused / reset / dropped (litellm calls these a 500!) and
    │                              malformed bodies (litellm: 500 on openai/, APIError(200) on deepseek/)
    ├── AuthenticationError        HTTP 401, 403
    └── BadRequestError            other 4xx (400, 404, 413, 422, ...)
        └── ContextWindowExceeded  litellm.ContextWindowExceededError, code context_length_exceeded

litellm is imported lazily by :func:`_litellm` (6-9 s) and configured once there. litellm never
retries on its own (``num_retries=0``, ``max_retries=0``): the cascade retries.
"""
from __future__ import annotations

import asyncio
import contextvars
import email.utils
import math
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from policies.errors import (AuthenticationError, BadRequestError, ContextWindowExceeded,
                             InvalidRequestError, ProviderConnectionError, ProviderError,
                             ProviderTimeout, RateLimitError, ServerError)

__all__ = ["CallResult", "AsyncCallStream", "CallStream", "acall", "call", "map_provider_error",
           "redact", "parse_retry_after", "warm_up"]

RESERVED_PARAMS = frozenset({"model", "messages", "api_base", "base_url", "api_key", "timeout",
                             "stream", "stream_options", "num_retries", "max_retries"})
REDACTED = "[REDACTED]"
_MAX_DETAIL = 600

# ── litellm, imported once and configured ───────────────────────────────────────────────────

_LITELLM: Any = None
_IMPORT_LOCK = threading.Lock()
_IN_OUR_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("cascade_in_call", default=False)


def _litellm() -> Any:
    """litellm, imported on first use (with the offline cost map) and configured once."""
    global _LITELLM
    if _LITELLM is None:
        with _IMPORT_LOCK:
            if _LITELLM is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                import litellm
                litellm.suppress_debug_info = True   # no "Give Feedback / Get Help" print per error
                # (not ``litellm.telemetry = False``: in 1.110 that name is an opt-in, default-off
                # subpackage, and assigning it would shadow the module)
                _install_quiet_hooks(litellm)
                _LITELLM = litellm
    return _LITELLM


def warm_up() -> None:
    """Pay litellm's import cost now (at server start, say) instead of on the first request."""
    _litellm()


def _install_quiet_hooks(litellm: Any) -> None:
    """Inside our calls only (a context variable), skip litellm's per-call cost calculation and,
    when no litellm callback is registered, its success-logging payload: we count tokens ourselves.
    Measured (openai/<model>, local server, CPU per call): 8.7 ms → 5.0 ms. Other litellm users in
    the process (a litellm.Router being benchmarked, say) are unaffected."""
    original_cost = litellm.response_cost_calculator

    def response_cost_calculator(*args: Any, **kwargs: Any) -> Any:
        return None if _IN_OUR_CALL.get() else original_cost(*args, **kwargs)

    litellm.response_cost_calculator = response_cost_calculator
    try:
        from litellm.litellm_core_utils.litellm_logging import Logging
    except ImportError:  # pragma: no cover - another litellm layout
        return
    original_success = Logging.async_success_handler
    names = ("callbacks", "success_callback", "_async_success_callback", "input_callback")

    async def async_success_handler(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _IN_OUR_CALL.get() and not any(getattr(litellm, n, None) for n in names):
            return None
        return await original_success(self, *args, **kwargs)

    Logging.async_success_handler = async_success_handler


# ── redaction ───────────────────────────────────────────────────────────────────────────────

_KEY_PATTERNS = re.compile(
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{6,}"        # OpenAI / DeepSeek / Anthropic style keys
    r"|\bAIza[0-9A-Za-z_\-]{20,}"                # Google API keys
    r"|(?<=Bearer )[A-Za-z0-9._~+/\-]{8,}=*"      # any bearer token
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")         # user:password@ in URLs
_SECRET_ENV = re.compile(r"(API_KEY|_KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret and every key-like token replaced by ``[REDACTED]``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _KEY_PATTERNS.sub(REDACTED, text)


def _env_secrets() -> list[str]:
    """Values of key-like environment variables (DEEPSEEK_API_KEY, ...): litellm may have used them."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


# ── error mapping ───────────────────────────────────────────────────────────────────────────

_TIMEOUTS = (("builtins", "TimeoutError"), ("litellm.exceptions", "Timeout"),
             ("openai", "APITimeoutError"), ("httpx", "TimeoutException"),
             ("httpcore", "TimeoutException"))
_CONNECTION = (("builtins", "ConnectionError"), ("json", "JSONDecodeError"),
               ("openai", "APIConnectionError"), ("httpx", "TransportError"),
               ("httpcore", "NetworkError"), ("httpcore", "RemoteProtocolError"),
               ("aiohttp", "ClientConnectionError"), ("aiohttp", "ClientPayloadError"),
               ("litellm.exceptions", "APIConnectionError"))
_ANSWERED = (("httpx", "HTTPStatusError"), ("aiohttp", "ClientResponseError"))  # a real HTTP status
_CONTEXT_WINDOW = (("litellm.exceptions", "ContextWindowExceededError"),)


def _any_of(chain: list[BaseException], specs: tuple[tuple[str, str], ...]) -> bool:
    """Whether an exception of the chain is one of ``specs``; only modules already imported are
    looked at, so mapping never imports anything."""
    mods = ((sys.modules.get(m), n) for m, n in specs)
    types = tuple(c for c in (getattr(m, n, None) for m, n in mods if m) if isinstance(c, type))
    return any(isinstance(e, types) for e in chain)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in out) and len(out) < 16:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _status_of(exc: BaseException) -> int | None:
    for candidate in (getattr(exc, "status_code", None), getattr(exc, "status", None),
                      getattr(getattr(exc, "response", None), "status_code", None)):
        if isinstance(candidate, int) and 100 <= candidate <= 599:
            return candidate
    return None


def map_provider_error(exc: BaseException, *, model: str,
                       secrets: Iterable[str | None] = ()) -> ProviderError:
    """Our exception for a failed provider call; its message is redacted. Never raises.

    The key given as ``secrets`` and the values of key-like environment variables are scrubbed
    from our message and, best effort, from the messages of the chained originals."""
    if isinstance(exc, ProviderError):
        return exc
    secret_list = [*secrets, *_env_secrets()]
    chain = _chain(exc)
    _scrub(chain, secret_list)
    status = _status_of(exc)
    cls, what = _classify(chain, status, str(exc))
    if cls in (ProviderTimeout, ProviderConnectionError) and status not in (200, 408):
        status = None                     # litellm's "500" for a dropped connection is not real
    message = _message(what, model, status, exc, secret_list)
    if cls is RateLimitError:
        return RateLimitError(message, model=model, retry_after=_retry_after(chain))
    return cls(message, model=model, status_code=status)


def _classify(chain: list[BaseException], status: int | None,
              text: str) -> tuple[type[ProviderError], str]:
    if not _any_of(chain, _ANSWERED):
        if _any_of(chain, _TIMEOUTS):
            return ProviderTimeout, "timed out"
        if _any_of(chain, _CONNECTION):
            return ProviderConnectionError, "connection failed or malformed response"
    lowered = text.lower()
    if status == 429:
        return RateLimitError, "rate limited"
    if status in (400, 413, 422) and (_any_of(chain, _CONTEXT_WINDOW)
                                      or "context_length_exceeded" in lowered
                                      or "maximum context length" in lowered):
        return ContextWindowExceeded, "context window exceeded"
    if status in (401, 403):
        return AuthenticationError, "authentication failed"
    if status == 408:
        return ProviderTimeout, "timed out"
    if status is not None and (status >= 500 or status == 409):
        return ServerError, "server error"
    if status is not None and 400 <= status < 500:
        return BadRequestError, "bad request"
    if status == 200:                     # litellm.APIError(200): the body could not be parsed
        return ProviderConnectionError, "malformed response"
    return ProviderError, "call failed"


_PREFIX = re.compile(r"^(?:litellm\.)?[A-Za-z]*(?:Error|Timeout): ")


def _message(what: str, model: str, status: int | None, exc: BaseException,
             secrets: list[str]) -> str:
    detail = f"{type(exc).__name__}: {exc}"
    while (stripped := _PREFIX.sub("", detail, count=1)) != detail:   # litellm stacks prefixes
        detail = stripped
    detail = redact(detail, secrets)
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "..."
    return f"{model}: {what}{f' (HTTP {status})' if status else ''}: {detail}"


def _scrub(chain: list[BaseException], secrets: list[str]) -> None:
    """Redact the chained originals too (tracebacks print them as our __cause__, error reporters read
    their attributes): args and every string / dict / list attribute (``message``, ``body``, ``text``)."""
    for e in chain:
        try:
            if any(isinstance(a, str) and redact(a, secrets) != a for a in e.args):
                e.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in e.args)
            for name, value in list(vars(e).items()):
                clean = _redact_value(value, secrets)
                if clean is not value:
                    setattr(e, name, clean)
        except (AttributeError, TypeError):
            continue


def _redact_value(value: Any, secrets: list[str], depth: int = 0) -> Any:
    """``value`` with secrets redacted in its strings (same object when nothing changed)."""
    if isinstance(value, str):
        clean = redact(value, secrets)
        return value if clean == value else clean
    if depth > 8 or not isinstance(value, (dict, list, tuple)):
        return value
    items = value.items() if isinstance(value, dict) else enumerate(value)
    cleaned = {k: _redact_value(v, secrets, depth + 1) for k, v in items}
    if all(cleaned[k] is v for k, v in (value.items() if isinstance(value, dict) else enumerate(value))):
        return value
    if isinstance(value, dict):
        return cleaned
    return type(value)(cleaned[i] for i in range(len(value)))


def _retry_after(chain: list[BaseException]) -> float | None:
    """From the response headers an exception carries. litellm's own deepseek/ handler leaves
    ``exc.response.headers`` empty and keeps the provider's in ``exc.litellm_response_headers``."""
    for exc in chain:
        for headers in (getattr(exc, "litellm_response_headers", None),
                        getattr(getattr(exc, "response", None), "headers", None),
                        getattr(exc, "headers", None)):
            if not headers or not hasattr(headers, "get"):
                continue
            for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0),
                                ("llm_provider-retry-after-ms", 1e-3),
                                ("llm_provider-retry-after", 1.0)):
                value = parse_retry_after(headers.get(name))
                if value is not None:
                    return value * scale
    return None


def parse_retry_after(value: Any, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value: a number, or an HTTP date (seconds until then); >= 0."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


# ── calls ───────────────────────────────────────────────────────────────────────────────────

@dataclass(frozen=True)
class CallResult:
    """One successful call. ``usage_reported`` is False when the provider sent no usage and the
    token counts are litellm's estimate; ``first_chunk_s`` is set for streams."""

    response: Any                 # litellm.ModelResponse (rebuilt from the chunks for a stream)
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    latency_s: float
    model_alias: str
    litellm_model: str
    usage_reported: bool = True
    first_chunk_s: float | None = None


def _request_kwargs(litellm_model: str, messages: list, api_base: str | None,
                    api_key: str | None, timeout_s: float, params: dict,
                    stream: bool) -> dict[str, Any]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty list")
    clash = RESERVED_PARAMS.intersection(params)
    if clash:
        raise InvalidRequestError(f"params may not set {sorted(clash)}; they are call arguments")
    kwargs: dict[str, Any] = {**params, "model": litellm_model, "messages": messages,
                              "timeout": timeout_s, "num_retries": 0, "max_retries": 0}
    if api_base is not None:
        kwargs["api_base"] = api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    return kwargs


def _make_result(response: Any, content: str, finish_reason: str | None, usage: Any, *,
                 started: float, model_alias: str, litellm_model: str, messages: list,
                 first_chunk_s: float | None = None) -> CallResult:
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    reported = isinstance(prompt, int) and isinstance(completion, int)
    if not reported:
        prompt, completion = _estimate_usage(litellm_model, messages, content)
    return CallResult(response, content, int(prompt), int(completion), finish_reason,
                      time.perf_counter() - started, model_alias, litellm_model, reported,
                      first_chunk_s)


def _estimate_usage(litellm_model: str, messages: list, content: str) -> tuple[int, int]:
    litellm = _litellm()
    try:
        prompt = litellm.token_counter(model=litellm_model, messages=messages)
        completion = litellm.token_counter(model=litellm_model, text=content) if content else 0
    except Exception:  # noqa: BLE001 - an estimate must not fail the call
        prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        completion = len(content) // 4 + (1 if content else 0)
    return int(prompt), int(completion)


def _finish(response: Any, stream_cls: type, *, stream: bool, **ctx: Any) -> Any:
    if stream:
        return stream_cls(response, **ctx)
    choice = response.choices[0] if getattr(response, "choices", None) else None
    content = getattr(getattr(choice, "message", None), "content", None) or ""
    return _make_result(response, content, getattr(choice, "finish_reason", None),
                        getattr(response, "usage", None), started=ctx["started"],
                        model_alias=ctx["model_alias"], litellm_model=ctx["litellm_model"],
                        messages=ctx["messages"])


async def acall(*, litellm_model: str, messages: list, api_base: str | None, api_key: str | None,
                timeout_s: float, params: dict, stream: bool = False,
                model_alias: str) -> "CallResult | AsyncCallStream":
    """Call the model once. With ``stream=True`` return an :class:`AsyncCallStream` as soon as the
    provider accepted the request (HTTP errors raise here, mid-stream ones while iterating).
    Besides litellm's own timeout, the call (up to the stream's start) has a hard deadline of
    ``timeout_s`` + 5 %."""
    kwargs = _request_kwargs(litellm_model, messages, api_base, api_key, timeout_s, params, stream)
    litellm = _litellm()
    token = _IN_OUR_CALL.set(True)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s * 1.05 + 0.05):
            response = await litellm.acompletion(**kwargs)
    except Exception as exc:  # noqa: BLE001 - mapped; CancelledError passes through
        raise map_provider_error(exc, model=model_alias, secrets=[api_key]) from exc
    finally:
        _IN_OUR_CALL.reset(token)
    return _finish(response, AsyncCallStream, stream=stream, started=started, messages=messages,
                   model_alias=model_alias, litellm_model=litellm_model, api_key=api_key)


def call(*, litellm_model: str, messages: list, api_base: str | None, api_key: str | None,
         timeout_s: float, params: dict, stream: bool = False,
         model_alias: str) -> "CallResult | CallStream":
    """Sync twin of :func:`acall` (litellm's timeout bounds each connect / read; no hard deadline)."""
    kwargs = _request_kwargs(litellm_model, messages, api_base, api_key, timeout_s, params, stream)
    litellm = _litellm()
    token = _IN_OUR_CALL.set(True)
    started = time.perf_counter()
    try:
        response = litellm.completion(**kwargs)
    except Exception as exc:  # noqa: BLE001
        raise map_provider_error(exc, model=model_alias, secrets=[api_key]) from exc
    finally:
        _IN_OUR_CALL.reset(token)
    return _finish(response, CallStream, stream=stream, started=started, messages=messages,
                   model_alias=model_alias, litellm_model=litellm_model, api_key=api_key)


# ── streaming ───────────────────────────────────────────────────────────────────────────────

class _StreamBase:
    """Assembles the chunks (text, finish_reason, usage) as they pass through the iterator."""

    def __init__(self, stream: Any, *, started: float, model_alias: str, litellm_model: str,
                 messages: list, api_key: str | None) -> None:
        self._stream, self._started, self._messages, self._api_key = stream, started, messages, api_key
        self.model_alias, self.litellm_model = model_alias, litellm_model
        self.chunks: list[Any] = []
        self._parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.first_chunk_s: float | None = None
        self.done = False

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def _take(self, chunk: Any) -> Any:
        if self.first_chunk_s is None:
            self.first_chunk_s = time.perf_counter() - self._started
        self.chunks.append(chunk)
        for choice in getattr(chunk, "choices", None) or ():
            piece = getattr(getattr(choice, "delta", None), "content", None)
            if piece:
                self._parts.append(piece)
            self.finish_reason = getattr(choice, "finish_reason", None) or self.finish_reason
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        return chunk

    def _failed(self, exc: Exception) -> ProviderError:
        self.done = True
        return map_provider_error(exc, model=self.model_alias, secrets=[self._api_key])

    def _final(self) -> CallResult:
        if self.finish_reason is None:
            raise ProviderConnectionError(f"{self.model_alias}: the stream ended without a "
                                          f"finish_reason after {len(self.chunks)} chunks",
                                          model=self.model_alias)
        try:
            response = _litellm().stream_chunk_builder(self.chunks, messages=self._messages)
        except Exception:  # noqa: BLE001 - the assembled fields are what we rely on
            response = None
        return _make_result(response, self.text, self.finish_reason, self.usage,
                            started=self._started, model_alias=self.model_alias,
                            litellm_model=self.litellm_model, messages=self._messages,
                            first_chunk_s=self.first_chunk_s)


class AsyncCallStream(_StreamBase):
    """``async for chunk in stream`` yields litellm's chunks (``stream.text`` is the text so far);
    ``await stream.result()`` drains the rest and returns the :class:`CallResult`."""

    def __aiter__(self) -> "AsyncCallStream":
        return self

    async def __anext__(self) -> Any:
        if self.done:
            raise StopAsyncIteration
        token = _IN_OUR_CALL.set(True)
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self.done = True
            raise
        except Exception as exc:  # noqa: BLE001 - mapped; CancelledError passes through
            raise self._failed(exc) from exc
        finally:
            _IN_OUR_CALL.reset(token)
        return self._take(chunk)

    async def result(self) -> CallResult:
        async for _ in self:
            pass
        return self._final()


class CallStream(_StreamBase):
    """Sync twin of :class:`AsyncCallStream`."""

    def __iter__(self) -> "CallStream":
        return self

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        token = _IN_OUR_CALL.set(True)
        try:
            chunk = next(self._stream)
        except StopIteration:
            self.done = True
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc) from exc
        finally:
            _IN_OUR_CALL.reset(token)
        return self._take(chunk)

    def result(self) -> CallResult:
        for _ in self:
            pass
        return self._final()
