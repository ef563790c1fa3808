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
import os
import threading
import time
from typing import Any

from policies.errors import ProviderConnectionError, ProviderError

from cascade.calls import RESERVED_PARAMS, CallResult, OutputCap, check_call_args, make_result  # noqa: F401
from cascade.provider_errors import map_provider_error, parse_retry_after, redact
from cascade.loops import adopt_litellm_worker

__all__ = ["CallResult", "AsyncCallStream", "CallStream", "acall", "call", "map_provider_error",
           "redact", "parse_retry_after", "warm_up", "is_loaded"]

REDACTED = "[REDACTED]"

# ── litellm, imported once and configured ───────────────────────────────────────────────────

_LITELLM: Any = None
_IMPORT_LOCK = threading.Lock()
_IN_OUR_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("cascade_in_call", default=False)


def load_litellm() -> Any:
    """litellm, imported on first use (with the offline cost map) and configured once: the one way the
    rest of the code (embeddings, tests, benchmarks) gets litellm."""
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


_litellm = load_litellm          # the name this module's callers used


def is_loaded() -> bool:
    """Whether :func:`load_litellm` has imported litellm already."""
    return _LITELLM is not None


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


# ── calls ───────────────────────────────────────────────────────────────────────────────────

def _request_kwargs(litellm_model: str, messages: list, api_base: str | None,
                    api_key: str | None, timeout_s: float, params: dict,
                    stream: bool) -> dict[str, Any]:
    check_call_args(messages, params)
    kwargs: dict[str, Any] = {**params, "model": litellm_model, "messages": messages,
                              "timeout": timeout_s, "num_retries": 0, "max_retries": 0}
    if api_base is not None:
        kwargs["api_base"] = api_base
    if api_key is not None:
        kwargs["api_key"] = api_key
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    return kwargs


def _make_result(response: Any, content: str, finish_reason: str | None, usage: Any, **ctx: Any) -> CallResult:
    return make_result(response, content, finish_reason, usage, estimate=_estimate_usage, **ctx)


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
    from cascade.confidence import tokens_of
    return _make_result(response, content, getattr(choice, "finish_reason", None),
                        getattr(response, "usage", None), started=ctx["started"],
                        model_alias=ctx["model_alias"], litellm_model=ctx["litellm_model"],
                        messages=ctx["messages"], logprobs=tokens_of(getattr(choice, "logprobs", None)))


async def acall(*, litellm_model: str, messages: list, api_base: str | None, api_key: str | None,
                timeout_s: float, params: dict, stream: bool = False,
                model_alias: str) -> "CallResult | AsyncCallStream":
    """Call the model once. With ``stream=True`` return an :class:`AsyncCallStream` as soon as the
    provider accepted the request (HTTP errors raise here, mid-stream ones while iterating).
    Besides litellm's own timeout, the call (up to the stream's start) has a hard deadline of
    ``timeout_s`` + 5 %."""
    kwargs = _request_kwargs(litellm_model, messages, api_base, api_key, timeout_s, params, stream)
    litellm = _litellm()
    adopt_litellm_worker()              # its logging worker may be bound to another loop (cascade.loops)
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
                   model_alias=model_alias, litellm_model=litellm_model, api_key=api_key,
                   max_tokens=params.get("max_tokens"))


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
                   model_alias=model_alias, litellm_model=litellm_model, api_key=api_key,
                   max_tokens=params.get("max_tokens"))


# ── streaming ───────────────────────────────────────────────────────────────────────────────

class _StreamBase:
    """Assembles the chunks (text, finish_reason, usage) as they pass through the iterator, and cuts
    a stream that goes past its ``max_tokens`` (:class:`cascade.calls.OutputCap`)."""

    def __init__(self, stream: Any, *, started: float, model_alias: str, litellm_model: str,
                 messages: list, api_key: str | None, max_tokens: Any = None) -> None:
        self._stream, self._started, self._messages, self._api_key = stream, started, messages, api_key
        self.model_alias, self.litellm_model = model_alias, litellm_model
        self.chunks: list[Any] = []
        self._parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.first_chunk_s: float | None = None
        self.done = False
        self.cap = OutputCap(max_tokens)
        self.logprobs: list[Any] = []      # the tokens' logprobs, when the provider sends them

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
            if getattr(choice, "logprobs", None) is not None:
                from cascade.confidence import tokens_of
                self.logprobs += tokens_of(choice.logprobs) or ()
            self.finish_reason = getattr(choice, "finish_reason", None) or self.finish_reason
            if piece and self.cap.take(piece, lambda: self.text):
                self.finish_reason = "length"
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        return chunk

    def _failed(self, exc: Exception) -> ProviderError:
        self.done = True
        return map_provider_error(exc, model=self.model_alias, secrets=[self._api_key])

    def final(self) -> CallResult:
        """The CallResult of a stream that has ended (raises when it ended without a finish_reason)."""
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
                            first_chunk_s=self.first_chunk_s, logprobs=self.logprobs)


class AsyncCallStream(_StreamBase):
    """``async for chunk in stream`` yields litellm's chunks (``stream.text`` is the text so far);
    ``await stream.result()`` drains the rest and returns the :class:`CallResult`."""

    def __aiter__(self) -> "AsyncCallStream":
        return self

    async def __anext__(self) -> Any:
        if self.cap.cut and not self.done:      # over max_tokens: stop reading, close the connection
            self.done = True
            try:
                await self._stream.aclose()
            except Exception:  # noqa: BLE001 - the stream is abandoned either way
                pass
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
        return self.final()


class CallStream(_StreamBase):
    """Sync twin of :class:`AsyncCallStream`."""

    def __iter__(self) -> "CallStream":
        return self

    def __next__(self) -> Any:
        if self.cap.cut and not self.done:
            self.done = True
            try:
                self._stream.close()
            except Exception:  # noqa: BLE001
                pass
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
        return self.final()
