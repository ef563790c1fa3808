"""OpenAI-style error responses: ``{"error": {"message", "type", "param", "code"}}``.

    exception                           status  type                    code
    ──────────────────────────────────  ──────  ──────────────────────  ────────────────────────
    ApiError (raised by the server)     its own (401 / 404 / 413 / 400 ...)
    pydantic ValidationError            400     invalid_request_error   invalid_value / unsupported_parameter / ...
    PromptTooLarge                      413     invalid_request_error   prompt_too_large    (param: messages)
    InvalidRequestError                 400     invalid_request_error   invalid_request
    BudgetExceeded                      429     insufficient_quota      budget_exceeded     + Retry-After (int s >= 1):
                                                                        the window's reset, or the expected settle
                                                                        time of reservations in flight (<= 60 s)
    BudgetStoreUnavailable              503     server_error            budget_store_unavailable
    EscalationExhausted                 502     upstream_error          escalation_exhausted + Retry-After when a circuit is open
      ... every call refused as a bad request (HTTP 400 from the provider or its client library):
                                        400     invalid_request_error   invalid_request
    ProviderError                       502     upstream_error          provider_error
    anything else                       500     server_error            internal_error (no detail)

Messages are the library's typed messages (the provider layer already redacts keys from them), run
through :func:`cascade.providers.redact` once more; a traceback never reaches a body.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

from policies.errors import (BudgetExceeded, BudgetStoreUnavailable, EscalationExhausted,
                             InvalidRequestError, PromptTooLarge, ProviderError)

__all__ = ["ApiError", "ErrorReply", "error_reply", "error_json", "outcome_of", "retry_after_seconds"]

_MAX_MESSAGE = 2000


class ApiError(Exception):
    """An error the server itself answers with (auth, unknown model, body too large, bad JSON)."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, outcome: str = "invalid_request",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.outcome, self.headers = outcome, headers or {}


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    outcome: str

    def content(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def error_json(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def retry_after_seconds(exc: BudgetExceeded) -> int:
    """Whole seconds for the Retry-After header: ``exc.retry_after`` (the window's reset, or the settle
    time of the reservations in flight that stand in the way) rounded up, at least 1 (a total or
    per-request cap has no reset: 1 s)."""
    value = exc.retry_after
    if value is None or not math.isfinite(value):
        return 1
    return max(1, int(math.ceil(value)))


def error_reply(exc: BaseException, secrets: Iterable[str] = ()) -> ErrorReply:
    """The HTTP answer for ``exc`` (see the table in the module docstring)."""
    from cascade.server.schemas import ValidationError, validation_problem

    if isinstance(exc, ApiError):
        return ErrorReply(exc.status, error_json(_clean(exc.message, secrets), exc.type, exc.param, exc.code),
                          dict(exc.headers), exc.outcome)
    if isinstance(exc, ValidationError):
        message, param, code = validation_problem(exc)
        return ErrorReply(400, error_json(message, "invalid_request_error", param, code), {}, "invalid_request")
    if isinstance(exc, BudgetExceeded):
        headers = {"Retry-After": str(retry_after_seconds(exc))}
        return ErrorReply(429, error_json(_clean(str(exc), secrets), "insufficient_quota", None, "budget_exceeded"),
                          headers, "budget_exceeded")
    if isinstance(exc, PromptTooLarge):
        return ErrorReply(413, error_json(_clean(str(exc), secrets), "invalid_request_error", "messages",
                                          "prompt_too_large"), {}, "too_large")
    if isinstance(exc, InvalidRequestError):
        return ErrorReply(400, error_json(_clean(str(exc), secrets), "invalid_request_error", _param_of(str(exc)),
                                          "invalid_request"), {}, "invalid_request")
    if isinstance(exc, BudgetStoreUnavailable):
        return ErrorReply(503, error_json("the budget store is unavailable; try again later", "server_error", None,
                                          "budget_store_unavailable"), {"Retry-After": "1"}, "store_unavailable")
    if isinstance(exc, EscalationExhausted) and _refused_as_bad_request(exc):
        return ErrorReply(400, error_json(_clean(str(exc), secrets), "invalid_request_error", None, "invalid_request"),
                          {}, "invalid_request")
    if isinstance(exc, EscalationExhausted):
        wait = getattr(exc, "retry_after", None)         # an open circuit: when a call may go through again
        headers = {} if wait is None else {"Retry-After": str(max(1, math.ceil(wait)))}
        return ErrorReply(502, error_json(_clean(str(exc), secrets), "upstream_error", None, "escalation_exhausted"),
                          headers, "exhausted")
    if isinstance(exc, ProviderError):
        return ErrorReply(502, error_json(_clean(str(exc), secrets), "upstream_error", None, "provider_error"),
                          {}, "provider_error")
    return ErrorReply(500, error_json("internal server error", "server_error", None, "internal_error"), {}, "error")


def _refused_as_bad_request(exc: EscalationExhausted) -> bool:
    """Every call that was made failed as a bad request (the request's fault, not the providers')."""
    made = [a for a in exc.attempts if getattr(a, "status", None) == "error"]
    return bool(made) and all(str(a.error or "").startswith("BadRequestError") for a in made)


def outcome_of(exc: BaseException) -> str:
    return error_reply(exc).outcome


def _param_of(message: str) -> str | None:
    """``messages[2].content`` style locations start the Router's InvalidRequestError messages."""
    head = message.split(" ", 1)[0]
    for name in ("messages", "max_tokens", "user", "tools", "response_format"):
        if head.startswith(name):
            return head.rstrip(":,") if head.startswith("messages") else name
    return "messages" if message.startswith("no model of policy") else None


def _clean(message: str, secrets: Iterable[str]) -> str:
    from cascade.providers import redact

    text = redact(message, secrets)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."
