"""Retries as tenacity strategies over the policy's per-error-class rules.

``RetryStrategy`` supplies ``retry`` / ``stop`` / ``wait`` callables for ``tenacity.AsyncRetrying``:
each error class (rate limit, timeout, 5xx, connection) has its own attempt count and backoff; a
provider's Retry-After is honoured (up to ``max_retry_after_s``; a longer demand gives up on the model
so the plan falls back); nothing sleeps past the request's deadline. Non-retryable errors stop at once.
"""
from __future__ import annotations

import random
from typing import Any, Callable

from policies.errors import (ProviderConnectionError, ProviderError, ProviderTimeout, RateLimitError,
                             ServerError)
from policies.schema import RetryConfig, RetryRule

_CLASSES: tuple[tuple[type[ProviderError], str], ...] = (
    (RateLimitError, "rate_limit"), (ProviderTimeout, "timeout"), (ServerError, "server_error"),
    (ProviderConnectionError, "connection"))


def error_class(exc: BaseException) -> str | None:
    for cls, name in _CLASSES:
        if isinstance(exc, cls):
            return name
    return None


class RetryStrategy:
    def __init__(self, config: RetryConfig, *, deadline_at: float, clock: Callable[[], float],
                 rng: random.Random) -> None:
        self.config = config
        self.deadline_at = deadline_at
        self._clock = clock
        self._rng = rng
        self._counts: dict[str, int] = {}
        self._next_wait: float | None = None

    def _rule(self, name: str) -> RetryRule:
        return getattr(self.config, name)

    def retry(self, retry_state: Any) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return exc is not None and error_class(exc) is not None

    def wait(self, retry_state: Any) -> float:
        """Tenacity asks for the wait before it asks whether to stop: count the failure and work out
        the delay here; ``stop`` then reads the verdict."""
        exc = retry_state.outcome.exception()
        name = error_class(exc)
        self._next_wait = None
        if name is None:
            return 0.0
        self._counts[name] = self._counts.get(name, 0) + 1
        if self._counts[name] >= self._rule(name).attempts:
            return 0.0
        delay = self._delay(name, exc)
        if delay is not None and self._clock() + delay < self.deadline_at:
            self._next_wait = delay
        return self._next_wait or 0.0

    def stop(self, retry_state: Any) -> bool:
        return self._next_wait is None

    def _delay(self, name: str, exc: BaseException) -> float | None:
        if isinstance(exc, RateLimitError) and exc.retry_after is not None and self.config.honour_retry_after:
            if exc.retry_after > self.config.max_retry_after_s:
                return None
            return max(0.0, exc.retry_after)
        backoff = self._rule(name).backoff
        n = self._counts[name]
        base = min(backoff.max_s, backoff.initial_s * backoff.multiplier ** (n - 1))
        return base + self._rng.uniform(0.0, backoff.jitter_s)
