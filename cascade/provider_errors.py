"""Provider errors: litellm / openai / httpx / aiohttp / asyncio exceptions mapped to the cascade's tree
(see :mod:`cascade.providers`), Retry-After parsing, and redaction of API keys from every message and
from the chained originals."""
from __future__ import annotations

import email.utils
import math
import os
import re
import sys
import time
from typing import Any, Iterable

from policies.errors import (AuthenticationError, BadRequestError, ContextWindowExceeded,
                             ProviderConnectionError, ProviderError, ProviderTimeout, RateLimitError,
                             ServerError)

REDACTED = "[REDACTED]"
_MAX_DETAIL = 600


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


# litellm checks messages before it sends them and raises a bare Exception (which it wraps as an
# APIConnectionError, "500"): the request's fault, never retried, never held against the provider.
_REFUSED_LOCALLY = ("valid OpenAI chat completion messages",)


def _classify(chain: list[BaseException], status: int | None,
              text: str) -> tuple[type[ProviderError], str]:
    if any(marker in text for marker in _REFUSED_LOCALLY):
        return BadRequestError, "bad request (refused by litellm before sending)"
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
