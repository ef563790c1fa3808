"""The live executor: follows the walk (:mod:`policies.walk`) over one Plan, calling providers.

For each attempt the walk asks for: deadline → circuit breaker → budget reservation (worst-case cost)
→ provider call through the model's transport, under tenacity (per-class retries, Retry-After,
per-attempt timeout, overall deadline) → settle the real cost (usage × the policy's price) or release
the reservation → answer checks. What happened is recorded in the walk, which says what comes next.
Reservations are settled on every path, including exceptions and task cancellation; a call given up
on (our timeout, or the request cancelled) runs on and its late answer is recorded by the gate. Once
an attempt has been answered (and paid for), a store that cannot budget the next attempt skips it
(the walk's rules then decide: best answer, or the store's error) rather than failing the request.

Two drivers of the same walk: :meth:`LiveExecutor.run` (answers whole, buffered streams included)
and :meth:`LiveExecutor.stream` (chunks passed on as they arrive; no checks). The call itself (transport,
timeout, late answers, retries) is :class:`cascade.provider_call.ProviderCaller`; its names stay
importable from here.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, Sequence

from policies.budget import Cap
from policies.checks import Answer, Check, CheckOutcome, build_check, consults
from policies.errors import AuthenticationError, BudgetExceeded, BudgetStoreUnavailable, ProviderError
from policies.plan import Attempt, Plan
from policies.schema import CheckSpec, Policy
from policies.walk import (ANSWER_FAILED, REFUSED, SKIPPED, Accept, AttemptOutcome, Exhausted, Replan,
                           TryAttempt, Walk, answered)

from classifiers.confidence import confidence_of

from cascade.calls import CallSpec
from cascade.gate import BudgetGate
from cascade.health import HealthBoard
from cascade.provider_call import (_HEALTH_FAILURES, Opener, ProviderCaller, _call,  # noqa: F401 (re-exported)
                                   _counts_against_health, _open_buffered, _open_primed, late_grace,
                                   retry_after_of)
from cascade.trace import AttemptRecord, RouteTrace
from cascade.transport import Transport

UNBUDGETED = object()          # a second opinion the budget store could not budget
Replanner = Callable[[], Awaitable[Plan | None]]


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
    refused: BudgetExceeded | None = None   # the first budget refusal met in the current plan
    answered: bool = False                  # some attempt was answered (and paid for)
    store_error: BudgetStoreUnavailable | None = None   # the store refused a reservation after that


@dataclass
class Candidate:
    """A successful call: its result, the checks it ran and the attempt that made it."""

    attempt: Attempt
    result: Any
    record: AttemptRecord
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.passed = all(c.passed for c in self.record.checks)


@dataclass
class WalkResult:
    """How the walk ended: ``Accept`` (with the accepted candidate; None for a direct stream, whose
    chunks went to the caller) or ``Exhausted`` (with the budget refusal met, if any, and the store's
    error if it could not budget the attempts left after a paid answer)."""

    action: Accept | Exhausted
    accepted: Candidate | None
    refusal: BudgetExceeded | None
    store_error: BudgetStoreUnavailable | None = None


class CheckBook:
    """The callables for a policy's check specs, built once per Router."""

    def __init__(self, policy: Policy) -> None:
        self._checks: dict[str, Check] = {}
        specs = [*policy.escalation.checks]
        for rungs in policy.escalation.ladders.values():
            specs += [c for r in rungs for c in (r.checks or ())]
        for spec in specs:
            if self._key(spec) not in self._checks:
                self._checks[self._key(spec)] = build_check(spec.name, dict(spec.params), scorer=_scorer_of(spec))

    @staticmethod
    def _key(spec: CheckSpec) -> str:
        return f"{spec.name}:{spec.params!r}"

    def run(self, specs: Sequence[CheckSpec], answer: Answer) -> list[CheckOutcome]:
        return [self._checks[self._key(s)](answer) for s in specs]


class LiveExecutor:
    def __init__(self, policy: Policy, gate: BudgetGate, health: HealthBoard, checks: CheckBook,
                 transports: Mapping[str, Transport], credentials: Callable[[str], tuple[str | None, str | None]],
                 *, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]], rng: Any,
                 missing_keys: Mapping[str, str] | None = None) -> None:
        self.policy, self.gate, self.health, self.checks = policy, gate, health, checks
        self._missing_keys = dict(missing_keys or {})
        self.transports, self._credentials = transports, credentials
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self.caller = ProviderCaller(policy, gate, health, transports, credentials, clock=clock, sleep=sleep, rng=rng)

    # ---- the two drivers of the walk -----------------------------------------------------------
    async def run(self, plan: Plan, ctx: CallContext, trace: RouteTrace,
                  replan: Replanner | None = None) -> WalkResult:
        """Walk ``plan`` to its end, each answer whole (and checked)."""
        walk, found = Walk.of(plan, self.policy), {}
        while True:
            action = walk.next()
            if isinstance(action, TryAttempt):
                outcome, candidate = await self.attempt(action.attempt, ctx, trace)
                if candidate is not None:
                    found[action.index] = candidate
                walk.record(outcome)
            elif isinstance(action, Replan):
                if await self._replan(walk, ctx, replan):
                    found = {}
            else:
                accepted = found.get(action.index) if isinstance(action, Accept) else None
                return WalkResult(action, accepted, ctx.refused, ctx.store_error)

    async def stream(self, plan: Plan, ctx: CallContext, trace: RouteTrace, ended: list[WalkResult],
                     replan: Replanner | None = None) -> AsyncIterator[Any]:
        """Walk ``plan`` passing each attempt's chunks on as they arrive (no checks: a stream that
        has started cannot be escalated); the walk's end is appended to ``ended``."""
        walk = Walk.of(plan, self.policy)
        while True:
            action = walk.next()
            if isinstance(action, TryAttempt):
                got: list[AttemptOutcome] = []
                async for chunk in self.stream_attempt(action.attempt, ctx, trace, got):
                    yield chunk
                walk.record(got[0])
            elif isinstance(action, Replan):
                await self._replan(walk, ctx, replan)
            else:
                ended.append(WalkResult(action, None, ctx.refused, ctx.store_error))
                return

    async def _replan(self, walk: Walk, ctx: CallContext, replan: Replanner | None) -> bool:
        """Hand the walk a fresh plan; True when it differs (the walk starts over on it)."""
        fresh = await replan() if replan is not None else None
        changed = fresh is not None and fresh.attempts != walk.plan.attempts
        if changed:
            ctx.refused = None
        walk.replan(fresh)
        return changed

    # ---- one attempt ---------------------------------------------------------------------------
    async def attempt(self, attempt: Attempt, ctx: CallContext,
                      trace: RouteTrace) -> tuple[AttemptOutcome, Candidate | None]:
        """Make one attempt (reserve, call with retries, settle, check — a second opinion included when
        its checks ask for one) and say what happened."""
        admitted = await self._admit(attempt, ctx, trace)
        if isinstance(admitted, AttemptOutcome):
            return admitted, None
        reservation, notes = admitted
        consult = attempt.consult if attempt.consult is not None and any(
            consults(c, ctx.prompt_text) for c in attempt.checks) else None
        early = (asyncio.ensure_future(self._second_opinion(consult, ctx, trace))
                 if consult is not None and _parallel(attempt) else None)
        opener = _open_buffered if ctx.stream else _call
        try:
            paid = await self._paid_call(attempt, ctx, trace, opener, reservation, notes, answers=True)
        except BaseException:     # cancelled or an unexpected error: the second opinion goes too
            if early is not None:
                early.cancel()
            raise
        if paid is None:
            if early is not None:
                await early                      # billed whatever happened to the first call
            return ANSWER_FAILED, None
        result, cost = paid
        candidate = await self._checked(attempt, result, cost, ctx, trace, notes, consult, early)
        candidate.record.overrun_usd = self.gate.overrun(reservation, cost)
        passed = sum(o.passed for o in candidate.record.checks)
        empty = not (result.content or "").strip()
        return answered(passed, len(candidate.record.checks) - passed, empty), candidate

    async def _second_opinion(self, consult: Attempt, ctx: CallContext, trace: RouteTrace) -> str | None | object:
        """The second model's answer for an agreement check (reserved, billed, traced like any call);
        None when it could not be had, UNBUDGETED when the budget store could not budget its call."""
        try:
            admitted = await self._admit(consult, ctx, trace, store_down_skips=False)
        except BudgetStoreUnavailable as exc:
            trace.add(AttemptRecord(consult.model, "skipped", f"budget store: {exc}"))
            return UNBUDGETED
        if isinstance(admitted, AttemptOutcome):
            return None
        reservation, notes = admitted
        paid = await self._paid_call(consult, ctx, trace, _call, reservation, notes)
        if paid is None:
            return None
        result, cost = paid
        trace.add(AttemptRecord(consult.model, "second_opinion", _joined(consult.reason, notes), result.prompt_tokens,
                                result.completion_tokens, cost, result.latency_s, finish_reason=result.finish_reason,
                                answer=result.content or ""))
        return result.content or ""

    async def paid_answer(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace) -> tuple[Any, float] | None:
        """One answer of ``attempt`` outside the walk (a shadow or judge call): admitted (deadline,
        breaker, reservation against ``ctx.caps``), called with retries and settled exactly as the
        walk's calls; None when it was not made or failed (the trace says why)."""
        admitted = await self._admit(attempt, ctx, trace, store_down_skips=False)
        if isinstance(admitted, AttemptOutcome):
            return None
        reservation, notes = admitted
        return await self._paid_call(attempt, ctx, trace, _call, reservation, notes)

    async def _paid_call(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace, opener: Opener,
                         reservation: Any, notes: list[str], *, answers: bool = False) -> tuple[Any, float] | None:
        """Call with retries and settle the reservation: commit the real cost (usage x price) of an
        answer, or release it on a provider error (traced; None) or on cancellation. ``answers``: this
        is the request's own answer (a paid answer now exists)."""
        started, settled = self._clock(), False
        try:
            result = await self._call_with_retries(attempt, ctx, trace, opener)
            trace.call_answered(attempt.model)
            cost = self.policy.catalog[attempt.model].price.cost(result.prompt_tokens, result.completion_tokens)
            settled = True
            ctx.answered = ctx.answered or answers
            trace.unrecorded_cost_usd += await self.gate.commit(reservation, cost, notes)
        except ProviderError as exc:
            settled = True
            await self._failed(attempt, reservation, exc, notes, trace, started)
            return None
        finally:
            if not settled:   # cancelled or an unexpected error: the money was not spent by us
                await self.gate.release_shielded(reservation)
                self.health.release_probe(attempt.model)
        self.health.success(attempt.model)
        return result, cost

    async def stream_attempt(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace,
                             outcome: list[AttemptOutcome]) -> AsyncIterator[Any]:
        """One attempt whose chunks are passed on as they arrive; what happened is appended to
        ``outcome``. A failure before the first chunk is retried / fallen back from; after it the
        provider error reaches the caller."""
        admitted = await self._admit(attempt, ctx, trace)
        if isinstance(admitted, AttemptOutcome):
            outcome.append(admitted)
            return
        reservation, notes = admitted
        started, settled = self._clock(), False
        try:
            try:
                stream = await self._call_with_retries(attempt, ctx, trace, _open_primed)
            except ProviderError as exc:
                settled = True
                await self._failed(attempt, reservation, exc, notes, trace, started)
                outcome.append(ANSWER_FAILED)
                return
            async for chunk in stream:
                yield chunk
            result = stream.final()
            cost = self.policy.catalog[attempt.model].price.cost(result.prompt_tokens, result.completion_tokens)
            settled = ctx.answered = True
            trace.unrecorded_cost_usd += await self.gate.commit(reservation, cost, notes)
            self.health.success(attempt.model)
            trace.add(AttemptRecord(attempt.model, "ok", _joined(attempt.reason, notes), result.prompt_tokens,
                                    result.completion_tokens, cost, self._clock() - started,
                                    finish_reason=result.finish_reason,
                                    overrun_usd=self.gate.overrun(reservation, cost),
                                    confidence=_confidence_dict(result, ctx.prompt_text)))
            outcome.append(answered(0, 0))
        finally:
            if not settled:
                await self.gate.release_shielded(reservation)
                self.health.release_probe(attempt.model)

    async def _admit(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace, *,
                     store_down_skips: bool = True) -> AttemptOutcome | tuple[Any, list[str]]:
        """Deadline, breaker, reservation: the reservation and its notes, or why the attempt is not made
        (a store that cannot budget it after a paid answer: skipped, when ``store_down_skips``).
        A model without its API key fails the request at once (a configuration error, not retried)."""
        if attempt.model in self._missing_keys:
            var = self._missing_keys[attempt.model]
            exc = AuthenticationError(f"{attempt.model}: no API key: environment variable {var} is not set",
                                      model=attempt.model)
            trace.add(AttemptRecord(attempt.model, "error", attempt.reason, error=f"AuthenticationError: {exc}"))
            raise exc
        if self._clock() >= ctx.deadline_at:
            trace.add(AttemptRecord(attempt.model, "skipped", "deadline reached before this attempt"))
            return SKIPPED
        if not self.health.acquire(attempt.model):
            trace.add(AttemptRecord(attempt.model, "skipped", "circuit open: model failing, cooling down"))
            return SKIPPED
        notes: list[str] = []
        try:
            reservation = await self.gate.reserve(notes, request_id=ctx.request_id, user=ctx.user,
                                                  model=attempt.model, amount_usd=attempt.est_cost_usd, caps=ctx.caps)
        except BudgetExceeded as exc:
            self.health.release_probe(attempt.model)
            ctx.refused = ctx.refused or exc
            trace.add(AttemptRecord(attempt.model, "skipped", f"budget: {exc}"))
            return REFUSED
        except BudgetStoreUnavailable as exc:
            self.health.release_probe(attempt.model)
            if not (ctx.answered and store_down_skips):
                raise
            # A paid answer exists: this attempt cannot be budgeted, the walk's rules decide what the
            # request returns (its best answer, or this error) instead of a 503 over a paid answer.
            ctx.store_error = ctx.store_error or exc
            trace.add(AttemptRecord(attempt.model, "skipped", f"budget store: {exc}"))
            return SKIPPED
        except BaseException:
            self.health.release_probe(attempt.model)
            raise
        return reservation, notes

    async def _failed(self, attempt: Attempt, reservation: Any, exc: ProviderError, notes: list[str],
                      trace: RouteTrace, started: float) -> None:
        await self.gate.release(reservation)
        if not _counts_against_health(exc):      # the request's fault, not the provider's
            self.health.release_probe(attempt.model)
        trace.add(AttemptRecord(attempt.model, "error", _joined(attempt.reason, notes),
                                latency_s=self._clock() - started, error=f"{type(exc).__name__}: {exc}"))

    async def _checked(self, attempt: Attempt, result: Any, cost: float, ctx: CallContext, trace: RouteTrace,
                       notes: list[str], consult: Attempt | None = None,
                       early: "asyncio.Future[str | None | object] | None" = None) -> Candidate:
        """Run the attempt's checks; an agreement check last, with the second opinion (asked for only
        when every other check passed, unless it was asked at the same time as the answer)."""
        conf = confidence_of(getattr(result, "logprobs", None), result.content or "", ctx.prompt_text)
        answer = Answer(prompt=ctx.prompt_text, text=result.content or "", finish_reason=result.finish_reason,
                        model=attempt.model, confidence=conf)
        plain = [c for c in attempt.checks if c.name != "agreement"]
        outcomes = self.checks.run(plain, answer)
        for spec in (c for c in attempt.checks if c.name == "agreement"):
            if early is not None:
                second = await early
            elif consult is not None and all(o.passed for o in outcomes):
                second = await self._second_opinion(consult, ctx, trace)
            elif consult is not None:
                outcomes.append(CheckOutcome("agreement", False, "not asked: another check failed"))
                continue
            else:
                second = None
            if second is UNBUDGETED:             # the answer is paid for: it is not refused for that
                outcomes.append(CheckOutcome("agreement", True, "abstained: no second opinion (the budget "
                                                                "store could not budget its call)"))
                continue
            outcomes += self.checks.run([spec], Answer(**{**answer.__dict__, "second": second}))
        failed = [o for o in outcomes if not o.passed]
        status = "check_failed" if failed else "ok"
        reason = _joined(attempt.reason if not failed else "; ".join(f"{o.name}: {o.reason}" for o in failed), notes)
        record = trace.add(AttemptRecord(attempt.model, status, reason, result.prompt_tokens,
                                         result.completion_tokens, cost, result.latency_s, None, outcomes,
                                         finish_reason=result.finish_reason, answer=answer.text,
                                         confidence=conf.to_dict() if conf is not None else None))
        return Candidate(attempt, result, record)

    # ---- the call: timeout, late answers, retries (cascade.provider_call) --------------------------
    async def _timed_call(self, opener: Opener, attempt: Attempt, ctx: CallContext, spec: CallSpec) -> Any:
        return await self.caller.timed_call(opener, attempt, ctx, spec)

    async def _call_with_retries(self, attempt: Attempt, ctx: CallContext, trace: RouteTrace, opener: Opener) -> Any:
        return await self.caller.call_with_retries(attempt, ctx, trace, opener)


def _parallel(attempt: Attempt) -> bool:
    return any(c.name == "agreement" and bool(c.param("parallel", False)) for c in attempt.checks)


def _scorer_of(spec: CheckSpec) -> Any:
    """The loaded answer checker of an ``answer_checker`` check (artifacts are read once per process)."""
    if spec.name != "answer_checker":
        return None
    from classifiers import load_answer_checker
    return load_answer_checker(str(spec.param("artifact", "default")))


def _confidence_dict(result: Any, prompt: str) -> dict | None:
    conf = confidence_of(getattr(result, "logprobs", None), result.content or "", prompt)
    return conf.to_dict() if conf is not None else None


def _joined(reason: str, notes: list[str]) -> str:
    return "; ".join([reason, *notes]) if notes else reason
