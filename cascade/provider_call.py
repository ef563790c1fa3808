"""One provider call as the live executor makes it: the model's transport, opened one of three ways
(whole answer, a stream drained whole, a stream primed with its first chunk), given up on after the
per-attempt timeout (a late answer is still recorded by the gate), retried under the policy's
strategy (per-class retries, Retry-After, overall deadline) with every retry in the trace, and each
failure told to the model's circuit breaker when it says something about the provider.

:class:`ProviderCaller` is the I/O half of :class:`cascade.executor.LiveExecutor`, which decides
what to call (admission, settlement, checks); nothing here reserves or settles money.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

import tenacity

from policies.errors import AuthenticationError, ContextWindowExceeded, ProviderError, ProviderTimeout, RateLimitError
from policies.plan import Attempt
from policies.schema import Policy

from cascade.calls import BufferedStream, CallSpec, PrimedStream
from cascade.confidence import logprob_params
from cascade.gate import BudgetGate
from cascade.health import HealthBoard
from cascade.retrying import RetryStrategy
from cascade.trace import AttemptRecord, RouteTrace
from cascade.transport import Transport

if TYPE_CHECKING:
    from cascade.executor import CallContext

_HEALTH_FAILURES = (AuthenticationError,)
Opener = Callable[[Transport, CallSpec], Awaitable[Any]]


class ProviderCaller:
    """Calls a catalog model through its transport with the policy's timeout and retries."""

    def __init__(self, policy: Policy, gate: BudgetGate, health: HealthBoard, transports: Mapping[str, Transport],
                 credentials: Callable[[str], tuple[str | None, str | None]], *, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]], rng: Any) -> None:
        self.policy, self.gate, self.health = policy, gate, health
        self.transports, self._credentials = transports, credentials
        self._clock, self._sleep, self._rng = clock, sleep, rng

    async def timed_call(self, opener: Opener, attempt: Attempt, ctx: "CallContext", spec: CallSpec) -> Any:
        """The call, given up on after ``spec.timeout_s`` or when the request is cancelled. The provider
        call itself runs on, up to a grace period past the timeout: if it is answered after all, the gate
        records what it cost (the provider bills it)."""
        timeout = spec.timeout_s
        graced = CallSpec(**{**spec.__dict__, "timeout_s": timeout + late_grace(timeout)})
        call = asyncio.ensure_future(opener(self.transports[attempt.model], graced))
        late = dict(request_id=ctx.request_id, user=ctx.user, model=attempt.model, caps=ctx.caps,
                    price=self.policy.catalog[attempt.model].price)

        async def give_up(cancelled: bool) -> None:   # timed out, or cancelled (shutdown, client gone)
            self.gate.settle_late(call, **late)

        await wait_or_give_up(call, timeout, give_up, model=attempt.model)
        return call.result()

    async def call_with_retries(self, attempt: Attempt, ctx: "CallContext", trace: RouteTrace,
                                opener: Opener) -> Any:
        strategy = RetryStrategy(self.policy.retries, deadline_at=ctx.deadline_at, clock=self._clock, rng=self._rng)
        model_spec = self.policy.catalog[attempt.model]
        api_base, api_key = self._credentials(attempt.model)
        params = logprob_params(model_spec.capabilities, {**ctx.params, **dict(attempt.params)})
        started = [self._clock()]

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception()
            wait = state.next_action.sleep if state.next_action else 0.0
            trace.add(AttemptRecord(attempt.model, "retried", f"retrying in {wait:.2f}s",
                                    latency_s=self._clock() - started[0], error=f"{type(exc).__name__}: {exc}"))
            started[0] = self._clock() + wait

        retrying = tenacity.AsyncRetrying(retry=strategy.retry, stop=strategy.stop, wait=strategy.wait,
                                          sleep=self._sleep, reraise=True, before_sleep=before_sleep)
        async for try_ in retrying:
            with try_:
                timeout = min(model_spec.timeout_s or self.policy.retries.attempt_timeout_s,
                              max(0.001, ctx.deadline_at - self._clock()))
                started[0] = self._clock()
                spec = CallSpec(attempt.litellm_model, ctx.messages, api_base, api_key, timeout, params,
                                attempt.model)
                try:
                    return await self.timed_call(opener, attempt, ctx, spec)
                except ProviderError as exc:
                    if _counts_against_health(exc):
                        self.health.failure(attempt.model)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")


async def _call(transport: Transport, spec: CallSpec) -> Any:
    return await transport.acall(spec)


async def _open_buffered(transport: Transport, spec: CallSpec) -> BufferedStream:
    """A stream drained whole (so its answer can be checked before the caller sees a chunk)."""
    opened = await transport.astream(spec)
    result = await opened.result()
    return BufferedStream(result, list(opened.chunks))


async def _open_primed(transport: Transport, spec: CallSpec) -> PrimedStream:
    """A stream whose first chunk has arrived (a failure before it can still be retried)."""
    opened = await transport.astream(spec)
    try:
        first = await opened.__anext__()
    except StopAsyncIteration:
        first = None
    return PrimedStream(opened, first)


async def wait_or_give_up(call: "asyncio.Future[Any]", timeout: float,
                          give_up: Callable[[bool], Awaitable[None]], *, model: str, what: str = "answer") -> None:
    """Return once ``call`` is done within ``timeout``. Else ``await give_up(cancelled)`` — the waiting task
    was cancelled (True: the cancellation is raised again) or the timeout passed (False: ProviderTimeout) —
    and ``call`` runs on: whoever gives up lets the gate record a late answer (chat calls here, the semantic
    cache's paid embedding calls in :mod:`cascade.cache.paid_embedding`)."""
    try:
        done, _ = await asyncio.wait({call}, timeout=timeout)
    except BaseException:
        await give_up(True)
        raise
    if call not in done:
        await give_up(False)
        raise ProviderTimeout(f"{model}: no {what} within {timeout:.2f}s (a late answer is still recorded in the "
                              f"ledger)", model=model)


def late_grace(timeout: float) -> float:
    """Seconds past ``timeout`` that a call we stopped waiting for may still run: the timeout itself,
    at least 1 s and at most 30 s. A provider bills an answer it finishes even when we gave up on it, so
    the call runs on with ``timeout + late_grace(timeout)`` and an answer inside it is recorded in the
    ledger (chat calls here, the semantic cache's paid embedding calls in
    :mod:`cascade.cache.paid_embedding`)."""
    return min(max(timeout, 1.0), 30.0)


def _counts_against_health(exc: ProviderError) -> bool:
    """Failed calls that say something about the provider (5xx, timeouts, dropped connections, rate
    limits, rejected keys) count towards its circuit breaker; bad requests do not."""
    return not isinstance(exc, ContextWindowExceeded) and (exc.retryable or isinstance(exc, _HEALTH_FAILURES))


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitError) else None
