"""Streaming: ``await router.acomplete(..., stream=True)`` returns a :class:`CascadeStream` of
OpenAI-shaped chunks (litellm's ``ModelResponseStream``); its ``.cascade`` trace is complete once the
stream has ended.

Two modes, chosen by the policy:
- **buffered** (default whenever an attempt has answer checks): each attempt's stream is drained and
  checked before anything is released, so a failed cheap answer is never shown; the caller then gets
  the accepted answer's chunks.
- **direct** (``escalation.stream_unchecked: true``, or no checks): chunks flow as they arrive. Failures
  before the first chunk fall back to the next attempt; after it there is nothing to escalate to, and
  the error is raised to the caller mid-stream. Checks are not run.
Both reserve, settle and release budget exactly as ``acomplete`` does.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Sequence

from policies.errors import BudgetExceeded, EscalationExhausted, ProviderError
from policies.plan import Attempt

from cascade.trace import AttemptRecord, RouteTrace

if TYPE_CHECKING:
    from cascade.router import Router


@dataclass
class BufferedStream:
    """A drained stream: the call's result plus the chunks to replay to the caller."""

    result: Any
    chunks: list[Any] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)


class CascadeStream:
    """Async iterator of chunks; ``.cascade`` is the RouteTrace (final after the last chunk)."""

    def __init__(self, chunks: AsyncIterator[Any], trace: RouteTrace) -> None:
        self._chunks = chunks
        self.cascade = trace

    def __aiter__(self) -> "CascadeStream":
        return self

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()  # type: ignore[attr-defined]


async def _replay(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


async def astream(router: "Router", messages: Sequence[Mapping[str, Any]], *, user: str | None = None,
                  **params: Any) -> CascadeStream:
    params = {k: v for k, v in params.items() if k != "stream"}
    policy = router.policy
    checked = any(policy.checks_for(r) for rungs in policy.escalation.ladders.values() for r in rungs)
    if checked and not policy.escalation.stream_unchecked:
        chosen, trace = await router._run(messages, user, {**params, "stream": True}, stream=True)
        return CascadeStream(_replay(chosen.result.chunks), trace)
    return await _direct(router, messages, user, params)


async def _direct(router: "Router", messages: Sequence[Mapping[str, Any]], user: str | None,
                  params: dict) -> CascadeStream:
    started = router._clock()
    try:
        routed = await router._aroute(messages, user, {**params, "stream": True})
    except BudgetExceeded as exc:
        raise router._with_retry_after(exc) from None
    trace = RouteTrace(uuid.uuid4().hex, policy_name(router), routed.score, routed.request.modality, user,
                       plan_reason=routed.plan.reason)
    ctx = router._context(trace.request_id, user, messages, params, routed, started)
    return CascadeStream(_direct_chunks(router, routed, ctx, trace, started), trace)


def policy_name(router: "Router") -> str:
    return router.policy.name


async def _direct_chunks(router: "Router", routed: Any, ctx: Any, trace: RouteTrace, started: float) -> AsyncIterator[Any]:
    executor = router._executor
    try:
        for attempt in routed.plan.attempts:
            async for chunk in _direct_attempt(router, executor, attempt, ctx, trace):
                yield chunk
            if trace.outcome == "ok":
                return
        why = "; ".join(f"{a.model}: {a.status} ({a.error or a.reason})" for a in trace.attempts)
        trace.outcome, trace.error = "error", f"EscalationExhausted: {why}"
        if ctx.refused is not None and all(a.status == "skipped" for a in trace.attempts):
            raise router._with_retry_after(ctx.refused)
        raise EscalationExhausted(f"every attempt failed: {why}", attempts=trace.attempts, trace=trace)
    finally:
        trace.latency_s = router._clock() - started
        router._write(trace, routed, None)


class PrimedStream:
    """An opened provider stream whose first chunk has already arrived (so that failures before any
    output are retried or fallen back from, like a non-streaming call)."""

    def __init__(self, stream: Any, first: Any) -> None:
        self._stream, self._first = stream, first

    def __aiter__(self) -> "PrimedStream":
        return self

    async def __anext__(self) -> Any:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._stream.__anext__()

    def _final(self) -> Any:
        return self._stream._final()


async def _open_primed(*, stream: bool = False, **kwargs: Any) -> PrimedStream:
    from cascade.providers import acall
    opened = await acall(stream=True, **kwargs)
    try:
        first = await opened.__anext__()
    except StopAsyncIteration:
        first = None
    return PrimedStream(opened, first)


async def _direct_attempt(router: "Router", executor: Any, attempt: Attempt, ctx: Any,
                          trace: RouteTrace) -> AsyncIterator[Any]:
    if not router.health.acquire(attempt.model):
        trace.add(AttemptRecord(attempt.model, "skipped", "circuit open: model failing, cooling down"))
        return
    notes: list[str] = []
    try:
        reservation = await router.gate.reserve(notes, request_id=ctx.request_id, user=ctx.user,
                                                model=attempt.model, amount_usd=attempt.est_cost_usd, caps=ctx.caps)
    except BudgetExceeded as exc:
        router.health.release_probe(attempt.model)
        ctx.refused = ctx.refused or exc
        trace.add(AttemptRecord(attempt.model, "skipped", f"budget: {exc}"))
        return
    except BaseException:
        router.health.release_probe(attempt.model)
        raise
    settled = False
    opened_at = time.perf_counter()
    try:
        try:
            stream = await executor._call_with_retries(attempt, ctx, trace, call=_open_primed)
        except ProviderError as exc:
            settled = True
            await router.gate.release(reservation)
            executor._on_failure(attempt, exc)
            trace.add(AttemptRecord(attempt.model, "error", attempt.reason, error=f"{type(exc).__name__}: {exc}"))
            return
        async for chunk in stream:
            yield chunk
        result = stream._final()
        cost = router.policy.catalog[attempt.model].price.cost(result.prompt_tokens, result.completion_tokens)
        settled = True
        await router.gate.commit(reservation, cost, notes)
        router.health.success(attempt.model)
        reason = "; ".join([attempt.reason, *notes])
        trace.add(AttemptRecord(attempt.model, "ok", reason, result.prompt_tokens, result.completion_tokens,
                                cost, time.perf_counter() - opened_at))
        trace.model, trace.outcome = attempt.model, "ok"
        trace.escalated = len([a for a in trace.attempts if a.status != "retried"]) > 1
    finally:
        if not settled:
            await router.gate.release_shielded(reservation)
            router.health.release_probe(attempt.model)
