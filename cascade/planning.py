"""From messages to a Plan: describe the messages, count tokens, score, decide. Shared by
``Router.route`` / ``Router.complete`` and the ``cascade route`` command."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from policies.budget import UNLIMITED, BudgetSnapshot
from policies.engine import ALL_HEALTHY, Health, decide
from policies.errors import InvalidRequestError
from policies.plan import Plan
from policies.request import Request, describe_messages
from policies.schema import Policy

from cascade.tokens import count_prompt_tokens


@dataclass(frozen=True)
class Routed:
    request: Request
    score: float
    plan: Plan


def build_request(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], user: str | None) -> Request:
    facts = describe_messages(messages)
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if user is not None and not isinstance(user, str):
        raise InvalidRequestError(f"user must be a string, got {type(user).__name__}")
    response_format = params.get("response_format")
    needs_json = isinstance(response_format, Mapping) and response_format.get("type") in ("json_object", "json_schema")
    tokens = count_prompt_tokens(facts.text, n_messages=len(messages), n_images=facts.n_images,
                                 n_documents=facts.n_documents)
    return Request(text=facts.text, prompt_tokens=tokens, max_tokens=max_tokens, n_images=facts.n_images,
                   n_documents=facts.n_documents, needs_tools=bool(params.get("tools")), needs_json=needs_json,
                   stream=bool(params.get("stream")), user=user)


def route(policy: Policy, classifier: Any, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
          *, user: str | None = None, budget: BudgetSnapshot = UNLIMITED, health: Health = ALL_HEALTHY) -> Routed:
    request = build_request(messages, params, user)
    score = float(classifier.score_one(request.text))
    return Routed(request, score, decide(policy, request, score, budget, health))
