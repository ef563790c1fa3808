"""The one exception tree of deepseek-cascade.

    CascadeError
    ├── ConfigError            (also a ValueError) bad policy file / bad option; names file, line, field
    ├── InvalidRequestError    (also a ValueError) bad messages or parameters passed to the router
    │   ├── PromptTooLarge          the prompt is over the Router's max_prompt_chars (refused before tokenizing)
    │   └── FeedbackRejected        feedback on a request the router does not know, or another user's
    ├── ProviderError          a model call failed; carries model alias and status code
    │   ├── RateLimitError          429 (retry_after seconds when the provider said so)
    │   ├── ProviderTimeout         the call or the overall deadline timed out
    │   ├── ServerError             5xx
    │   ├── ProviderConnectionError connection refused / dropped / malformed body
    │   ├── AuthenticationError     401/403 (never retried)
    │   ├── BadRequestError         400 (never retried)
    │   └── ContextWindowExceeded   the prompt does not fit the model (falls back to a larger window)
    ├── BudgetExceeded         a budget cap refused the request (scope, window, retry_after)
    ├── BudgetStoreUnavailable the budget store could not be reached (policy: fail closed / open)
    │   └── LedgerLost             it answers, but lost its ledger (Redis restarted without persistence)
    ├── EscalationExhausted    every planned attempt failed or failed its checks; carries the attempts
    ├── SweepMismatch          the replay sweep disagrees with the engine's walk: nothing is reported
    └── PromotionRefused       ``cascade promote``: the candidate is not proven no worse and cheaper

These live in ``policies`` (the pure layer) so that the loader and engine can raise them without
importing the runtime; ``cascade.errors`` re-exports them. Messages never contain API keys.
"""
from __future__ import annotations

from typing import Any, Sequence


class CascadeError(Exception):
    """Base of every error raised by deepseek-cascade."""


class ConfigError(CascadeError, ValueError):
    """A policy file or option is invalid. ``errors`` lists (location, message) pairs."""

    def __init__(self, message: str, *, source: str | None = None,
                 errors: Sequence[tuple[str, str]] = ()) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(message)


class InvalidRequestError(CascadeError, ValueError):
    """The messages or parameters given to the router are malformed."""


class PromptTooLarge(InvalidRequestError):
    """The messages hold more text than the Router takes (``max_prompt_chars``); refused at once."""

    def __init__(self, message: str, *, chars: int, limit: int) -> None:
        self.chars, self.limit = chars, limit
        super().__init__(message)


class FeedbackRejected(InvalidRequestError):
    """Feedback on a request id the router has no trace of, or on another user's request."""


class ProviderError(CascadeError):
    """A call to a model provider failed."""

    retryable = False

    def __init__(self, message: str, *, model: str | None = None,
                 status_code: int | None = None) -> None:
        self.model = model
        self.status_code = status_code
        super().__init__(message)


class RateLimitError(ProviderError):
    retryable = True

    def __init__(self, message: str, *, model: str | None = None,
                 status_code: int | None = 429, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, model=model, status_code=status_code)


class ProviderTimeout(ProviderError):
    retryable = True


class ServerError(ProviderError):
    retryable = True


class ProviderConnectionError(ProviderError):
    retryable = True


class AuthenticationError(ProviderError):
    pass


class BadRequestError(ProviderError):
    pass


class ContextWindowExceeded(BadRequestError):
    pass


class BudgetExceeded(CascadeError):
    """A budget cap refused the request. ``retry_after`` is seconds until a retry may pass: the window's
    reset, or — when ``in_flight`` (the money is only *reserved* by requests still running, and the
    request would fit once they settle) — the time those reservations are expected to take."""

    def __init__(self, message: str, *, scope: str | None = None, window: str | None = None,
                 limit_usd: float | None = None, retry_after: float | None = None,
                 in_flight: bool = False) -> None:
        self.scope = scope
        self.window = window
        self.limit_usd = limit_usd
        self.retry_after = retry_after
        self.in_flight = in_flight
        super().__init__(message)


class BudgetStoreUnavailable(CascadeError):
    """The budget store could not be reached."""


class LedgerLost(BudgetStoreUnavailable):
    """The budget store answers but no longer holds the ledger this deployment was using (a Redis
    restarted without persistence, flushed, or replaced): its caps would start again from $0, so it
    is refused until an operator confirms a new ledger (``cascade budget --confirm-new-ledger``)."""


class EscalationExhausted(CascadeError):
    """Every attempt of the plan failed; ``attempts`` holds their trace records. ``retry_after``:
    seconds until an open circuit of the plan's models lets a call through again (None: none is open)."""

    def __init__(self, message: str, *, attempts: Sequence[Any] = (), trace: Any = None,
                 retry_after: float | None = None) -> None:
        self.attempts = list(attempts)
        self.trace = trace
        self.retry_after = retry_after
        super().__init__(message)


class SweepMismatch(CascadeError):
    """The vectorised sweep of a replay gave another result than the engine's walk for the same policy
    (a defect): replay and calibration refuse to report or write figures from it."""


class PromotionRefused(CascadeError):
    """A candidate policy was not promoted: replay on held-out traces did not show it no worse in
    quality and cheaper (the message gives the figures), or there is nothing to roll back to."""
