"""Router: the product's entry point. ``Router.complete()`` where an app would call an LLM.

    router = Router("default")                                   # built-in name, YAML path or Policy
    resp = router.complete(messages=[...], user="alice")         # OpenAI-shaped response
    router.complete(messages=[...], user=Principal("alice", team="ml", org="acme"))   # budgets per level
    resp.cascade                                                 # RouteTrace: who answered, cost, why
    resp = await router.acomplete(messages=[...])                # async twin
    router.route(messages)                                       # dry run: the Plan, no call

Configuration (:class:`cascade.services.RouterSettings`: plain values) is kept apart from the
collaborators (:class:`cascade.services.RouterServices`: budget store, health board, trace sink,
transports, classifier, clocks), which one factory builds and tests inject.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from policies.budget import Principal, user_of, window_bucket
from policies.errors import BudgetExceeded, BudgetStoreUnavailable, CascadeError, EscalationExhausted
from policies.loader import load_policy
from policies.plan import Plan
from policies.schema import Policy
from policies.walk import Accept

from cascade.executor import CallContext, Candidate, CheckBook, LiveExecutor, WalkResult
from cascade.feedback import UNSCOPED, FeedbackBook
from cascade.gate import BudgetGate
from cascade.loops import run_forever_then_close, settle
from cascade.planning import OFF_LOOP_CHARS, Routed, check_prompt_size, route, validate_user
from cascade.recall import Prelude, Recall
from cascade.refusals import record_refusal
from cascade.services import RouterServices, RouterSettings, build_services
from cascade.shadow import ShadowSampler
from cascade.trace import RouteTrace
from cascade.transport import aclose_all

Who = str | Principal | None        # who pays: a user name, or a Principal (user, team, org, key)
_PLAN_PARAMS = ("max_tokens", "max_completion_tokens", "stream")
_SYNC_DRAIN_S = 95.0       # close(): a late answer may take the longest attempt timeout plus its grace
_LOOP_CLOSE_S = 20.0       # close(): the background loop ending its last tasks (cascade.loops) and closing


class MissingCredentialsWarning(UserWarning):
    """A catalog model has no API key in the environment (``Router(...)`` names it and its variable)."""


@dataclass
class RequestRun:
    """One request in flight: its plan, call context and trace (``acomplete`` and streaming share it)."""

    routed: Routed
    ctx: CallContext
    trace: RouteTrace
    started: float
    span: Any = None          # the request's telemetry handle (None when telemetry is off)
    prelude: Prelude | None = None


class Router:
    def __init__(self, policy: str | os.PathLike[str] | Policy = "default", settings: RouterSettings | None = None,
                 *, services: RouterServices | None = None, **options: Any) -> None:
        """``options``: any field of :class:`RouterSettings` (``budget_store``, ``trace_path``, ``trace_text``,
        ``classifier``, ``global_cap_usd``, ``user_cap_usd``, ``team_cap_usd``, ``org_cap_usd``,
        ``key_cap_usd``, ``cap_window``, ``health_url``, ``env``, ``transport``, ``seed``, ``opentelemetry``)
        or a collaborator of :class:`RouterServices` to use instead of the one the factory would build (a
        store or classifier object, ``health``, ``transport``, ``clock``, ``wall_clock``, ``sleep``,
        ``telemetry``). ``user=`` of a request is a user name or a :class:`~policies.budget.Principal`."""
        self.policy = load_policy(policy)
        self.services = services or build_services(self.policy, settings, **options)
        s = self.services
        self.policy = s.policy
        self.classifier, self.store, self.health, self.sink = s.classifier, s.store, s.health, s.sink
        self.caps = s.caps
        self._clock, self._wall = s.clock, s.wall_clock
        self.gate = BudgetGate(self.store, fail_open=self.policy.budgets.on_store_unavailable == "fail_open",
                               ttl_s=self.policy.budgets.reservation_ttl_s, spool=s.spool)
        self._started = False
        missing = s.missing_credentials()
        if missing:
            warnings.warn(MissingCredentialsWarning(
                "no API key for " + ", ".join(f"{a} (set {v})" for a, v in missing.items())
                + ": a request planned to them fails with AuthenticationError"), stacklevel=2)
        self.executor = LiveExecutor(self.policy, self.gate, self.health, CheckBook(self.policy), s.transports,
                                     s.credentials, clock=s.clock, sleep=s.sleep, rng=s.rng, missing_keys=missing)
        self.recall = Recall.for_policy(self.policy, s.transports, s.credentials,    # response cache, session pins
                                        gate=self.gate, caps=self.caps)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._loop_thread: threading.Thread | None = None
        self.shadow = ShadowSampler(self)          # the policy's shadow sampling (cascade.shadow)
        self.feedback_book = FeedbackBook(self)    # owners of recent requests, for feedback (cascade.feedback)

    # ---- planning ------------------------------------------------------------------------------
    def route(self, messages: Sequence[Mapping[str, Any]], *, user: Who = None, **params: Any) -> Routed:
        """Dry run: what the router would do with these messages now, and why. No model is called. A
        budget refusal does not raise: the Routed has an empty plan and the refusal in ``refused``
        (``complete`` / ``acomplete`` raise it)."""
        validate_user(user)
        check_prompt_size(messages, self.services.max_prompt_chars)
        snapshot = self.store.snapshot(user=user, caps=self.caps) if self.caps else None
        kwargs = {"budget": snapshot} if snapshot is not None else {}
        routed = route(self.policy, self.classifier, messages, params, user=user_of(user),
                       health=self.health.snapshot(), refusal_as_value=True, **kwargs)
        if routed.refused is not None:
            self.with_retry_after(routed.refused)
        return routed

    async def aroute(self, messages: Sequence[Mapping[str, Any]], *, user: Who = None,
                     start_at: str | None = None, **params: Any) -> Routed:
        """:meth:`route` without blocking the event loop: the budget store read asynchronously, a prompt
        over ``max_prompt_chars`` refused at once (:class:`PromptTooLarge`), and one over
        :data:`~cascade.planning.OFF_LOOP_CHARS` planned (tokenized) in the bounded planning pool; a
        budget refusal raises BudgetExceeded (the planning step of ``acomplete``)."""
        validate_user(user)
        chars = check_prompt_size(messages, self.services.max_prompt_chars)
        kwargs: dict[str, Any] = {}
        if self.caps:
            snapshot = await self._store_call(self.store.asnapshot(user=user, caps=self.caps))
            if snapshot is not None:
                kwargs["budget"] = snapshot
        args = (self.policy, self.classifier, messages, params)
        kwargs.update(user=user_of(user), health=self.health.snapshot(), start_at=start_at)
        if chars > OFF_LOOP_CHARS:
            return await self.services.off_loop(route, *args, **kwargs)
        return route(*args, **kwargs)

    async def _store_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except BudgetStoreUnavailable as exc:
            if self.policy.budgets.on_store_unavailable == "fail_closed":
                raise BudgetStoreUnavailable(f"budget store unavailable, failing closed (policy "
                                             f"on_store_unavailable: fail_closed): {exc}") from None
            return None

    # ---- one request: begin, walk, finish ------------------------------------------------------
    async def begin(self, messages: Sequence[Mapping[str, Any]], user: Who, params: dict,
                    *, stream: bool = False, prelude: Prelude | None = None) -> RequestRun:
        """Plan a request and open its trace (a budget refusal of the plan itself raises here)."""
        if not self._started:
            await self.astart()
        await self.services.warm_up(streaming=bool(params.get("stream")))   # litellm's import, off the attempts' clock
        started = self._clock()
        try:
            routed = await self.aroute(messages, user=user, start_at=prelude and prelude.pin, **params)
        except BudgetExceeded as exc:
            self.services.telemetry.refused(self.policy.name, exc)
            record_refusal(self, self.with_retry_after(exc), messages, user, prelude)
            raise exc from None
        except EscalationExhausted as exc:          # every capable model's circuit is open
            exc.retry_after = self.circuit_retry_after(self.policy.catalog)
            self.services.telemetry.refused(self.policy.name, exc)
            record_refusal(self, exc, messages, user, prelude)
            raise
        except CascadeError as exc:                 # a bad request, a budget store failing closed
            record_refusal(self, exc, messages, user, prelude)
            raise
        request_id = prelude.request_id if prelude is not None else self.services.request_ids()
        trace = RouteTrace(request_id, self.policy.name, routed.score, routed.request.modality, user_of(user),
                           plan_reason=routed.plan.reason)
        first = routed.plan.attempts[0].model if routed.plan.attempts else None
        if prelude is not None:
            prelude.annotate(trace, first)
        call_params = {k: v for k, v in params.items() if k not in _PLAN_PARAMS}
        ctx = CallContext(trace.request_id, user, messages, call_params, self.caps,
                          started + self.policy.retries.deadline_s, routed.request.text, stream=stream)
        span = self.services.telemetry.start_request(trace, planned_model=first)
        return RequestRun(routed, ctx, trace, started, span=span, prelude=prelude)

    async def replan(self, run: RequestRun) -> Plan:
        """A fresh plan for ``run`` with today's budget figures (the walk asks for it when a cap refused
        every planned attempt and the policy downgrades at the cap)."""
        r = run.routed.request
        params = {**run.ctx.params, **({"max_tokens": r.max_tokens} if r.max_tokens is not None else {}),
                  **({"stream": True} if r.stream else {})}
        try:
            fresh = await self.aroute(run.ctx.messages, user=run.ctx.user,
                                      start_at=run.prelude and run.prelude.pin, **params)
        except BudgetExceeded as exc:
            raise self.with_retry_after(exc) from None
        if fresh.plan.attempts != run.routed.plan.attempts:
            run.trace.plan_reason = fresh.plan.reason
        return fresh.plan

    def finish(self, run: RequestRun, ended: WalkResult | BaseException) -> Candidate | None:
        """Finish the trace from how the walk ended (latency first), write its line, and raise when the
        request failed: the one place a trace is completed."""
        trace = run.trace
        trace.latency_s = self._clock() - run.started
        if isinstance(ended, BaseException):       # a replan refused by a cap, an error, a cancellation
            _ended_without_answer(trace, ended)
            self._write(run, None)
            return None
        action = ended.action
        if isinstance(action, Accept):
            trace.accepted(action.attempt.model, action.outcome, action.escalated)
            self._write(run, ended.accepted)
            self.shadow.after(run, ended.accepted)
            return ended.accepted
        if action.refused and ended.refusal is not None:
            exc: Exception = self.with_retry_after(ended.refusal)
        elif ended.store_error is not None:
            exc = ended.store_error
        else:
            exc = EscalationExhausted(f"every attempt failed: {trace.attempts_summary()}", attempts=trace.attempts,
                                      trace=trace, retry_after=self.circuit_retry_after(
                                          [a.model for a in run.routed.plan.attempts]))
        _ended_without_answer(trace, exc)
        self._write(run, None)
        raise exc

    def with_retry_after(self, exc: BudgetExceeded) -> BudgetExceeded:
        """Seconds until a retry may pass: the window's reset, or, when only reservations in flight stand
        in the way, the time they are expected to settle (never later than the reset)."""
        if exc.retry_after is not None and not exc.in_flight:
            return exc
        reset = None
        if exc.window in ("minute", "hour", "day", "month"):
            _, end = window_bucket(exc.window, self._wall())
            reset = max(1.0, float(end) - self._wall()) if end is not None else None
        if exc.in_flight:
            settle = self.gate.settle_estimate_s()
            exc.retry_after = settle if reset is None else min(settle, reset)
        elif exc.retry_after is None:
            exc.retry_after = reset
        return exc

    def circuit_retry_after(self, models: Any) -> float | None:
        """Seconds until the first of ``models`` whose circuit is open may be called again (at least 1),
        or None when none of them is open."""
        waits = [w for m in models if (w := self.health.retry_in(m)) is not None]
        return max(1.0, min(waits)) if waits else None

    def _write(self, run: RequestRun, chosen: Candidate | None) -> None:
        answer = chosen.result.content if chosen is not None else None
        self.record(run.trace, run.span, run.ctx.messages, run.routed.request.text, answer)

    def record(self, trace: RouteTrace, span: Any, messages: Any, prompt: str, answer: str | None) -> None:
        """A finished request: end its telemetry span, remember its owner (for feedback), append its
        trace line. A failing sink (full disk, ...) is logged, never raised: the answer was paid for
        and must reach the caller. Used by the walk's end and by a response-cache hit alike."""
        self.services.telemetry.end_request(span, trace, messages=messages, answer=answer)
        self.feedback_book.owned(trace.request_id, trace.user)
        if self.sink is None:
            return
        try:
            self.sink.write(trace, ts=self._wall(), prompt=prompt, answer=answer)
        except Exception as exc:  # noqa: BLE001
            logging.getLogger("cascade.trace").error("trace line for %s not written: %s: %s",
                                                     trace.request_id, type(exc).__name__, exc)

    def feedback(self, request_id: str, score: float | bool, *, user: Any = UNSCOPED) -> dict[str, Any]:
        """Label a request's answer: ``score`` from 0 (inadequate) to 1 (adequate), stored beside the
        trace (``cascade train --traces`` learns from it). With ``user`` (None included), the request
        must be theirs (:class:`FeedbackRejected` otherwise). Returns the feedback line written."""
        return self.feedback_book.record(request_id, score, user=user)

    # ---- execution -----------------------------------------------------------------------------
    async def acomplete(self, messages: Sequence[Mapping[str, Any]], *, user: Who = None,
                        session_id: str | None = None, **params: Any) -> Any:
        """Run the policy's plan for these messages; return the OpenAI-shaped response with ``.cascade``.
        ``session_id``: later turns of the session start at the model that answered its last turn
        (:mod:`cascade.sessions`). A response-cache hit (:mod:`cascade.recall`) calls no model."""
        try:
            prelude, hit = await self.recall.before(self, messages, user, params, session_id)
        except CascadeError as exc:                 # a bad user, session id or prompt size
            record_refusal(self, exc, messages, user)
            raise
        if hit is not None:
            return hit
        if params.get("stream"):
            from cascade.streaming import astream
            return await astream(self, messages, user=user, prelude=prelude, **params)
        run = await self.begin(messages, user, params, prelude=prelude)
        chosen = await self.walk(run)
        chosen.result.response.cascade = run.trace
        return chosen.result.response

    async def walk(self, run: RequestRun) -> Candidate:
        """The walk of ``run`` with whole answers, finished into its trace."""
        try:
            ended = await self.executor.run(run.routed.plan, run.ctx, run.trace, replan=lambda: self.replan(run))
        except BaseException as exc:
            self.finish(run, exc)
            raise
        chosen = self.finish(run, ended)
        assert chosen is not None
        await self.recall.after(run.prelude, run.trace, chosen)
        return chosen

    # ---- sync twin -----------------------------------------------------------------------------
    def complete(self, messages: Sequence[Mapping[str, Any]], *, user: Who = None, **params: Any) -> Any:
        """Blocking twin of :meth:`acomplete` (runs on the router's own event-loop thread)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("Router.complete() was called inside a running event loop: use `await router.acomplete()`")
        future = asyncio.run_coroutine_threadsafe(self.acomplete(messages, user=user, **params), self._sync_loop())
        return future.result()

    def _sync_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=run_forever_then_close, args=(self._loop,),
                                                     name="cascade-router", daemon=True)
                self._loop_thread.start()
            return self._loop

    async def astart(self) -> None:
        """Apply what the settlement spool holds (spend an earlier run could not record), in the
        background until the store takes it. Called by the first request, or by a server at start-up."""
        self._started = True
        if self.gate.spool is not None and self.gate.spool.has_pending():
            self.gate.start_applying(delay_s=0.0)

    async def aclose(self) -> None:
        """Wait until no reservation of this router is held and every late answer is recorded (or
        spooled), close this loop's transport sessions, then what the router opened. Shadow calls
        are drained first (up to the policy's ``shadow.drain_s``)."""
        await self.shadow.drain()
        await self.gate.drain()
        await aclose_all(self.services.transports)
        self.close()

    def close(self) -> None:
        if self._loop is not None:       # the background loop of sync calls: its late answers, sessions, the loop
            steps = ((self.shadow.drain(), _SYNC_DRAIN_S), (self.gate.drain(), _SYNC_DRAIN_S),
                     (aclose_all(self.services.transports), 5), (settle(), 15))   # settle: litellm's logging worker too
            for coro, timeout in steps:
                try:
                    asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)
                except Exception:  # noqa: BLE001 - closing must not fail; the loop stops regardless
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
            if self._loop_thread is not threading.current_thread():
                # closed, not just stopping, once close() returns: litellm then disposes of a session of
                # this loop in place instead of handing its close to a loop about to end
                self._loop_thread.join(_LOOP_CLOSE_S)
        self.recall.close()
        self.services.close()


def _ended_without_answer(trace: RouteTrace, exc: BaseException) -> None:
    """A budget cap's refusal is the outcome ``refused``; anything else an ``error``."""
    if isinstance(exc, BudgetExceeded):
        trace.refused(exc)
    else:
        trace.failed(exc)
