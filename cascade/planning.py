"""From messages to a Plan: describe the messages, count tokens, score, decide. Shared by
``Router.route`` / ``Router.complete`` and the ``cascade route`` command.

Work per request is bounded before anything expensive: :func:`check_prompt_size` refuses a prompt over
``max_prompt_chars`` (:class:`PromptTooLarge`) from a count of characters that costs one pass over the
messages; the byte bound decides context fit without the tokenizer whenever it can; and a prompt longer
than :data:`OFF_LOOP_CHARS` is planned in the Router's bounded thread pool (``Router.aroute``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from policies.budget import LEVELS, UNLIMITED, BudgetSnapshot, Principal
from policies.engine import ALL_HEALTHY, Health, decide
from policies.errors import BudgetExceeded, InvalidRequestError, PromptTooLarge
from policies.plan import Plan
from policies.request import TEXT_FILE_MIME, Request, describe_messages, json_output
from policies.schema import Policy

from cascade.tokens import count_prompt_tokens


# Ordinary text runs 3-5 characters per DeepSeek token; the default prompt limit allows 8 per token
# of the largest context window of the policy's catalog (128,000 tokens: 1,024,000 characters).
CHARS_PER_TOKEN_ALLOWED = 8
OFF_LOOP_CHARS = 32_768


def default_max_prompt_chars(policy: Policy) -> int:
    return CHARS_PER_TOKEN_ALLOWED * max(spec.context_window for spec in policy.catalog.values())


def prompt_chars(messages: Any) -> int:
    """Characters of text in ``messages`` (string contents, text parts, and the data of text file parts,
    whose length bounds the text they decode to), in one cheap pass that trusts nothing: what is not
    text is left to :func:`describe_messages` to refuse."""
    if not isinstance(messages, (list, tuple)):
        return 0
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(_part_chars(p) for p in content if isinstance(p, Mapping))
    return total


def _part_chars(part: Mapping[str, Any]) -> int:
    text = part.get("text")
    if isinstance(text, str):
        return len(text)
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, Mapping) else part.get("file_data")
    return len(data) if isinstance(data, str) and data.startswith(TEXT_FILE_MIME) else 0


def check_prompt_size(messages: Any, limit: int) -> int:
    """The prompt's characters, or :class:`PromptTooLarge` when they exceed ``limit``."""
    chars = prompt_chars(messages)
    if chars > limit:
        raise PromptTooLarge(f"messages hold {chars:,} characters of text, over this server's limit of {limit:,} "
                             "(max_prompt_chars): shorten the prompt", chars=chars, limit=limit)
    return chars


@dataclass(frozen=True)
class Routed:
    """A request's plan. ``refused``: the budget refusal of a dry run (``Router.route``), whose plan is
    then empty and whose ``plan.reason`` is the refusal's message."""

    request: Request
    score: float
    plan: Plan
    refused: BudgetExceeded | None = None


def build_request(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], user: str | None,
                  policy: Policy | None = None) -> Request:
    """The engine's view of a request. Prompt tokens are counted with the DeepSeek tokenizer when the
    count can change a decision (the prompt could come near a context window of the policy's ladder);
    otherwise the byte bound (an over-count, so cost estimates and reservations stay on the safe side)
    spares the tokenizer's ~0.1-0.5 ms. Without a policy the count is always exact."""
    facts = describe_messages(messages)
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        max_tokens = params.get("max_completion_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    validate_user(user)
    n_messages, n_images, pages = len(messages), facts.n_images, facts.document_pages
    tokens = count_prompt_tokens(facts.text, exact=False, n_messages=n_messages, n_images=n_images,
                                 document_pages=pages)
    if policy is None or not _fits_everywhere(policy, tokens, max_tokens, facts):
        tokens = count_prompt_tokens(facts.text, exact=True, n_messages=n_messages, n_images=n_images,
                                     document_pages=pages)
    return Request(text=facts.text, prompt_tokens=tokens, max_tokens=max_tokens, n_images=facts.n_images,
                   n_documents=facts.n_documents, needs_tools=bool(params.get("tools")),
                   json_output=json_output(params.get("response_format")), stream=bool(params.get("stream")),
                   user=user)


def validate_user(user: Any, what: str = "user") -> None:
    """The user name keys budgets and traces: a string of valid text, or None — or a
    :class:`~policies.budget.Principal` whose every level is one."""
    if isinstance(user, Principal):
        for level in LEVELS:
            validate_user(user.subject(level), f"principal {level}")
        return
    if user is None:
        return
    if not isinstance(user, str):
        raise InvalidRequestError(f"{what} must be a string, got {type(user).__name__}")
    if not user.isascii():
        try:
            user.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError(f"{what} is not valid text (it holds a lone surrogate)") from None


def _fits_everywhere(policy: Policy, bound: int, max_tokens: int | None, facts: Any) -> bool:
    """True when even the token bound fits every model of the ladder the request will use."""
    wanted = max_tokens if max_tokens is not None else policy.routing.default_max_tokens
    modality = "document" if facts.n_documents else "vision" if facts.n_images else "text"
    for rung in policy.escalation.ladders.get(modality, ()):
        spec = policy.catalog[rung.model]
        if bound + min(wanted, spec.max_output_tokens) > spec.context_window:
            return False
    return True


def route(policy: Policy, classifier: Any, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
          *, user: str | None = None, budget: BudgetSnapshot = UNLIMITED, health: Health = ALL_HEALTHY,
          refusal_as_value: bool = False, start_at: str | None = None) -> Routed:
    """Plan ``messages``. A budget refusal raises BudgetExceeded, or with ``refusal_as_value`` (a dry run)
    comes back as a Routed with an empty plan and the refusal in ``refused``."""
    request = build_request(messages, params, user, policy)
    score = float(classifier.score_one(request.text))
    try:
        return Routed(request, score, decide(policy, request, score, budget, health, start_at))
    except BudgetExceeded as exc:
        if not refusal_as_value:
            raise
        return Routed(request, score, Plan((), score, request.modality, str(exc)), refused=exc)
