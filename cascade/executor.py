"""The live executor: runs one Plan against providers.

For each attempt: circuit breaker → budget reservation (worst-case cost) → provider call through
tenacity (per-class retries, Retry-After, per-attempt timeout, overall deadline) → settle the real cost
(usage × the policy's price) or release the reservation → answer checks → accept or escalate.
Reservations are settled on every path, including exceptions and task cancellation.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import tenacity

from policies.budget import Cap
from policies.checks import Answer, Check, CheckOutcome, build_check
from policies.errors import (AuthenticationError, BudgetExceeded, ContextWindowExceeded, ProviderError,
                             ProviderTimeout, RateLimitError)
from policies.plan import Attempt, Plan
from policies.schema import CheckSpec, Policy

from cascade.gate import BudgetGate
from cascade.health import HealthBoard
from cascade.retrying import RetryStrategy
from cascade.trace import AttemptRecord, RouteTrace

_HEALTH_FAILURES = (AuthenticationError,)


@dataclass
class CallContext:
    request_id: str
    user: str | None
    messages: Sequence[Any]
    params: dict[str, Any]
    caps: tuple[Cap, ...]
    deadline_at: float
    prompt_text: str
    stream: bool = False          # buffered streaming: the call drains the stream, checks see the whole text
    refused: Any = None           # the first BudgetExceeded met (direct streaming reports it)


@dataclass
class Candidate:
    """A successful call: its result, the checks it ran and the attempt that made it."""

    attempt: Attempt
    result: Any
    record: AttemptRecord
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.passed = all(c.passed for c in self.record.checks)


class CheckBook:
    """The callables for a policy's check specs, built once per Router."""

    def __init__(self, policy: Policy) -> None:
        self._checks: dict[str, Check] = {}
        specs = [*policy.escalation.checks]
        for rungs in policy.escalation.ladders.values():
            specs += [c for r in rungs for c in (r.checks or ())]
        for spec in specs:
            self._checks.setdefault(self._key(spec), build_check(spec.name, dict(spec.params)))

    @staticmethod
    def _key(spec: CheckSpec) -> str:
        return f"{spec.name}:{spec.params!r}"

    def run(self, specs: Sequence[CheckSpec], answer: Answer) -> list[CheckOutcome]:
        return [self._checks[self._key(s)](answer) for s in specs]


class LiveExecutor:
    def __init__(self, policy: Policy, gate: BudgetGate, health: HealthBoard, checks: CheckBook,
                 call: Callable[..., Awaitable[Any]], credentials: Callable[[str], tuple[str | None, str | None]],
                 *, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]], rng: Any) -> None:
        self.policy, self.gate, self.health, self.checks = policy, gate, health, checks
        self._call, self._credentials = call, credentials
        self._clock, self._sleep, self._rng = clock, sleep, rng

    async def run(self, plan: Plan, ctx: CallContext, trace: RouteTrace) -> tuple[Candidate | None, list[Candidate], BudgetExceeded | None]:
        """Try the plan's attempts in order. Returns the accepted candidate (or None), every successful
        candidate, and the budget refusal met, if any."""
        candidates: list[Candidate] = []
        refused: BudgetExceeded | None = None
        for i, attempt in enumerate(plan.attempts):
            if self._clock() >= ctx.deadline_at:
                trace.add(AttemptRecord(attempt.model, "skipped", "deadline reached before this attempt"))
                continue
            try:
                candidate = await self._attempt(attempt, ctx, trace)
            except BudgetExceeded as exc:
                refused = refused or exc
                trace.add(AttemptRecord(attempt.model, "skipped", f"budget: {exc}"))
                continue
            if candidate is None:
                continue
            candidates.append(candidate)
            if candidate.passed:
                trace.escalated = i > 0
                return candidate, candidates, refused
        return None, candidates, refused

    async def _attempt(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace) -> Candidate | None:
        if not self.health.acquire(attempt.model):
            trace.add(AttemptRecord(attempt.model, "skipped", "circuit open: model failing, cooling down"))
            return None
        notes: list[str] = []
        try:
            reservation = await self.gate.reserve(notes, request_id=ctx.request_id, user=ctx.user,
                                                  model=attempt.model, amount_usd=attempt.est_cost_usd, caps=ctx.caps)
        except BaseException:
            self.health.release_probe(attempt.model)
            raise
        settled = False
        try:
            result = await self._call_with_retries(attempt, ctx, trace)
            spec = self.policy.catalog[attempt.model]
            cost = spec.price.cost(result.prompt_tokens, result.completion_tokens)
            settled = True
            await self.gate.commit(reservation, cost, notes)
        except ProviderError as exc:
            settled = True
            await self.gate.release(reservation)
            self._on_failure(attempt, exc)
            trace.add(AttemptRecord(attempt.model, "error", _joined(attempt.reason, notes),
                                    error=f"{type(exc).__name__}: {exc}"))
            return None
        finally:
            if not settled:   # cancelled or an unexpected error: the money was not spent by us
                await self.gate.release_shielded(reservation)
                self.health.release_probe(attempt.model)
        self.health.success(attempt.model)
        return self._checked(attempt, result, cost, ctx, trace, notes)

    def _on_failure(self, attempt: Attempt, exc: ProviderError) -> None:
        if not _counts_against_health(exc):      # the request's fault, not the provider's
            self.health.release_probe(attempt.model)

    def _checked(self, attempt: Attempt, result: Any, cost: float, ctx: CallContext, trace: RouteTrace,
                 notes: list[str]) -> Candidate:
        answer = Answer(prompt=ctx.prompt_text, text=result.content or "", finish_reason=result.finish_reason,
                        model=attempt.model)
        outcomes = self.checks.run(attempt.checks, answer)
        failed = [o for o in outcomes if not o.passed]
        status = "check_failed" if failed else "ok"
        reason = _joined(attempt.reason if not failed else "; ".join(f"{o.name}: {o.reason}" for o in failed), notes)
        record = trace.add(AttemptRecord(attempt.model, status, reason, result.prompt_tokens,
                                         result.completion_tokens, cost, result.latency_s, None, outcomes,
                                         finish_reason=result.finish_reason, answer=answer.text))
        return Candidate(attempt, result, record)

    async def _timed_call(self, fn: Callable[..., Awaitable[Any]], attempt: Attempt, ctx: CallContext,
                          timeout: float, kwargs: dict[str, Any]) -> Any:
        """The call, given up on after ``timeout``. The provider call itself may run a grace period
        longer: if it is answered after all, the gate records what it cost (the provider bills it)."""
        call = asyncio.ensure_future(fn(timeout_s=timeout + _late_grace(timeout), **kwargs))
        try:
            done, _ = await asyncio.wait({call}, timeout=timeout)
        except BaseException:
            call.cancel()
            raise
        if call in done:
            return call.result()
        self.gate.settle_late(call, request_id=ctx.request_id, user=ctx.user, model=attempt.model, caps=ctx.caps,
                              price=self.policy.catalog[attempt.model].price)
        raise ProviderTimeout(f"{attempt.model}: no answer within {timeout:.2f}s (a late answer is still "
                              f"recorded in the ledger)", model=attempt.model)

    async def _call_with_retries(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace,
                                 call: Callable[..., Awaitable[Any]] | None = None) -> Any:
        strategy = RetryStrategy(self.policy.retries, deadline_at=ctx.deadline_at, clock=self._clock, rng=self._rng)
        spec = self.policy.catalog[attempt.model]
        api_base, api_key = self._credentials(attempt.model)
        params = {**ctx.params, **dict(attempt.params)}
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
                timeout = min(spec.timeout_s or self.policy.retries.attempt_timeout_s,
                              max(0.001, ctx.deadline_at - self._clock()))
                started[0] = self._clock()
                try:
                    kwargs = dict(litellm_model=attempt.litellm_model, messages=ctx.messages,
                                  api_base=api_base, api_key=api_key, params=params,
                                  model_alias=attempt.model, stream=ctx.stream)
                    if spec.transport != "litellm":   # only then: custom call functions never see it
                        kwargs["transport"] = spec.transport
                    return await self._timed_call(call or self._call, attempt, ctx, timeout, kwargs)
                except ProviderError as exc:
                    if _counts_against_health(exc):
                        self.health.failure(attempt.model)
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")


def _late_grace(timeout: float) -> float:
    """How long past our timeout an abandoned call may still finish (and be billed and recorded)."""
    return min(max(timeout, 1.0), 30.0)


def _counts_against_health(exc: ProviderError) -> bool:
    """Failed calls that say something about the provider (5xx, timeouts, dropped connections, rate
    limits, rejected keys) count towards its circuit breaker; bad requests do not."""
    return not isinstance(exc, ContextWindowExceeded) and (exc.retryable or isinstance(exc, _HEALTH_FAILURES))


def _joined(reason: str, notes: list[str]) -> str:
    return "; ".join([reason, *notes]) if notes else reason


def retry_after_of(exc: BaseException) -> float | None:
    return exc.retry_after if isinstance(exc, RateLimitError) else None
