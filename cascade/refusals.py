"""A request refused while planning still writes its one trace line.

Planning refuses a request before any model is called: a budget cap (BudgetExceeded), a bad request
(InvalidRequestError, PromptTooLarge: bad messages, parameters, user or session id), every capable
model's circuit open (EscalationExhausted), a budget store failing closed. The refusal is raised to
the caller as before (and counted in ``/metrics`` by ``cascade serve``); it is also written to the
trace sink, so replay of traces and the dashboard see refusals::

    {"v": 1, "request_id", "ts", "user", "policy", "score": null, "modality": null, "model": null,
     "outcome": "refused", "error": "BudgetExceeded: user 'bob' day cap $1.00: ...", "attempts": [], ...}

``user`` is the principal's user name (None when the user itself was what was wrong); the prompt is
written only by a sink that keeps text (and never for a prompt refused for its size); the sink scrubs
secrets from the line like any other. A refusal met during the walk (a cap refusing every planned
attempt) is written by the walk's end with the same outcome (:meth:`cascade.router.Router.finish`).
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

from policies.budget import user_of
from policies.errors import InvalidRequestError, PromptTooLarge

from cascade.trace import RouteTrace

log = logging.getLogger("cascade.trace")


def refusal_trace(policy: str, exc: BaseException, who: Any, request_id: str | None = None) -> RouteTrace:
    """The trace of a request refused while planning: no score, no plan, no attempt."""
    trace = RouteTrace(request_id or uuid.uuid4().hex, policy, None, None, _user_name(who))
    trace.refused(exc)
    return trace


def record_refusal(router: Any, exc: BaseException, messages: Any, who: Any, prelude: Any = None) -> None:
    """Write the refusal's trace line (when the router has a sink). A failing sink is logged, never
    raised: the caller must get the refusal itself."""
    sink = router.sink
    if sink is None:
        return
    request_id = prelude.request_id if prelude is not None else router.services.request_ids()
    trace = refusal_trace(router.policy.name, exc, who, request_id)
    if prelude is not None:
        prelude.annotate(trace)
    trace.latency_s = 0.0
    try:
        prompt = _prompt_text(messages, exc) if sink.keep_text else None
        sink.write(trace, ts=router._wall(), prompt=prompt, answer=None)
    except Exception as err:  # noqa: BLE001
        log.error("trace line of a refused request not written: %s: %s", type(err).__name__, err)


def _user_name(who: Any) -> str | None:
    """The principal's user name, or None when the user given is not a valid one (the refusal says so)."""
    from cascade.planning import validate_user
    try:
        validate_user(who)
    except InvalidRequestError:
        return None
    return user_of(who)


def _prompt_text(messages: Any, exc: BaseException) -> str | None:
    if isinstance(exc, PromptTooLarge):
        return None
    from policies.request import describe_messages
    try:
        return describe_messages(messages).text
    except Exception:  # noqa: BLE001 - messages that cannot be read were the refusal's reason
        return None
