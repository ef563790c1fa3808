"""Router: the product's entry point. ``Router.complete()`` where an app would call an LLM.

    router = Router("default")                                   # built-in name, YAML path or Policy
    resp = router.complete(messages=[...], user="alice")         # OpenAI-shaped litellm ModelResponse
    resp.cascade                                                 # RouteTrace: who answered, cost, why
    resp = await router.acomplete(messages=[...])                # async twin
    router.route(messages)                                       # dry run: the Plan, no call
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import threading
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

from policies.budget import deployment_caps, window_bucket
from policies.errors import BudgetExceeded, BudgetStoreUnavailable, EscalationExhausted
from policies.loader import load_policy
from policies.schema import Policy, with_transport

from cascade.executor import CallContext, Candidate, CheckBook, LiveExecutor
from cascade.gate import BudgetGate
from cascade.health import HealthBoard
from cascade.planning import Routed, route, validate_user
from cascade.trace import RouteTrace, TraceSink

_PLAN_PARAMS = ("max_tokens", "max_completion_tokens", "stream")


class Router:
    def __init__(self, policy: str | os.PathLike[str] | Policy = "default", *,
                 budget_store: str | Any | None = None, trace_path: str | os.PathLike[str] | None = None,
                 trace_text: bool = False, classifier: str | Any | None = None,
                 global_cap_usd: float | None = None, user_cap_usd: float | None = None,
                 cap_window: str = "total", health: Any | None = None, health_url: str | None = None,
                 env: Mapping[str, str] | None = None, call: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] = asyncio.sleep, seed: int | None = None,
                 transport: str | None = None) -> None:
        from classifiers import load_classifier
        from cascade.budget import open_budget_store
        self.policy = load_policy(policy)
        if transport is not None:       # an operator's override of the catalog's transports
            self.policy = with_transport(self.policy, transport)
        self._env = os.environ if env is None else env
        self.classifier = (load_classifier(classifier or self.policy.routing.classifier)
                           if classifier is None or isinstance(classifier, str) else classifier)
        store = budget_store if budget_store is not None else self.policy.budgets.store
        self._owns_store = isinstance(store, str)
        self.store = open_budget_store(store) if isinstance(store, str) else store
        self.caps = deployment_caps(self.policy.budgets, global_cap_usd=global_cap_usd,
                                    user_cap_usd=user_cap_usd, cap_window=cap_window)
        self.health = health or self._health(store, health_url, clock)
        self.sink = (TraceSink(trace_path, keep_text=trace_text, secrets=self._secrets())
                     if trace_path is not None else None)
        self._clock, self._wall = clock, wall_clock
        self.gate = BudgetGate(self.store, fail_open=self.policy.budgets.on_store_unavailable == "fail_open",
                               ttl_s=self.policy.budgets.reservation_ttl_s)
        self._uses_providers = call is None
        self._executor = LiveExecutor(self.policy, self.gate, self.health, CheckBook(self.policy),
                                      call or _default_call, self._credentials, clock=clock, sleep=sleep,
                                      rng=random.Random(seed))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()

    # ---- configuration -------------------------------------------------------------------------
    def _health(self, store: Any, health_url: str | None, clock: Callable[[], float]) -> Any:
        """Per-process breakers; shared through Redis when ``health_url`` is given or the budget store
        itself is Redis (one replica's discovery that a provider is down protects the others)."""
        local = HealthBoard(self.policy.circuit_breaker, clock=clock)
        url = health_url or (store if isinstance(store, str) and store.startswith(("redis://", "rediss://")) else None)
        if url is None:
            return local
        from cascade.health_shared import SharedHealthBoard
        return SharedHealthBoard(local, url)

    def _credentials(self, alias: str) -> tuple[str | None, str | None]:
        spec = self.policy.catalog[alias]
        base = spec.api_base or (self._env.get(spec.api_base_env) if spec.api_base_env else None)
        key = self._env.get(spec.api_key_env) if spec.api_key_env else None
        return base or None, key or None

    def _secrets(self) -> list[str]:
        return [k for alias in self.policy.catalog for k in [self._credentials(alias)[1]] if k]

    # ---- planning ------------------------------------------------------------------------------
    def route(self, messages: Sequence[Mapping[str, Any]], *, user: str | None = None, **params: Any) -> Routed:
        """Dry run: what the router would do with these messages now, and why. No model is called."""
        validate_user(user)
        snapshot = self.store.snapshot(user=user, caps=self.caps) if self.caps else None
        kwargs = {"budget": snapshot} if snapshot is not None else {}
        return route(self.policy, self.classifier, messages, params, user=user, health=self.health.snapshot(), **kwargs)

    async def _aroute(self, messages: Sequence[Mapping[str, Any]], user: str | None, params: dict) -> Routed:
        validate_user(user)
        kwargs: dict[str, Any] = {}
        if self.caps:
            snapshot = await self._store_call(self.store.asnapshot(user=user, caps=self.caps))
            if snapshot is not None:
                kwargs["budget"] = snapshot
        return route(self.policy, self.classifier, messages, params, user=user, health=self.health.snapshot(), **kwargs)

    async def _store_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except BudgetStoreUnavailable as exc:
            if self.policy.budgets.on_store_unavailable == "fail_closed":
                raise BudgetStoreUnavailable(f"budget store unavailable, failing closed (policy "
                                             f"on_store_unavailable: fail_closed): {exc}") from None
            return None

    # ---- execution -----------------------------------------------------------------------------
    async def acomplete(self, messages: Sequence[Mapping[str, Any]], *, user: str | None = None, **params: Any) -> Any:
        """Run the policy's plan for these messages; return the OpenAI-shaped response with ``.cascade``."""
        if params.get("stream"):
            from cascade.streaming import astream
            return await astream(self, messages, user=user, **params)
        chosen, trace = await self._run(messages, user, params)
        chosen.result.response.cascade = trace
        return chosen.result.response

    async def _run(self, messages: Sequence[Mapping[str, Any]], user: str | None, params: dict,
                   *, stream: bool = False) -> tuple[Candidate, RouteTrace]:
        """Plan and execute; returns the chosen candidate and the trace (written to the sink)."""
        if self._uses_providers and not providers_loaded():
            await _load_providers()       # litellm's import: not on the clock of the first attempt
        started = self._clock()
        try:
            routed = await self._aroute(messages, user, params)
        except BudgetExceeded as exc:
            raise self._with_retry_after(exc) from None
        trace = RouteTrace(uuid.uuid4().hex, self.policy.name, routed.score, routed.request.modality, user,
                           plan_reason=routed.plan.reason)
        ctx = self._context(trace.request_id, user, messages, params, routed, started)
        ctx.stream = stream
        try:
            chosen = await self._execute(routed, ctx, trace)
        finally:
            trace.latency_s = self._clock() - started
        self._write(trace, routed, chosen)
        return chosen, trace

    def _context(self, request_id: str, user: str | None, messages: Any, params: dict, routed: Routed,
                 started: float) -> CallContext:
        call_params = {k: v for k, v in params.items() if k not in _PLAN_PARAMS}
        return CallContext(request_id, user, messages, call_params, self.caps,
                           started + self.policy.retries.deadline_s, routed.request.text)

    async def _execute(self, routed: Routed, ctx: CallContext, trace: RouteTrace) -> Candidate:
        try:
            accepted, candidates, refused = await self._executor.run(routed.plan, ctx, trace)
            if accepted is None and not candidates and refused is not None:
                accepted, candidates, refused = await self._downgrade(routed, ctx, trace, refused)
        except BaseException as exc:
            trace.outcome, trace.error = "error", f"{type(exc).__name__}: {exc}"
            self._write(trace, routed, None)
            raise
        if accepted is not None:
            trace.model, trace.outcome = accepted.attempt.model, "ok"
            return accepted
        return self._exhausted(routed, trace, candidates, refused)

    async def _downgrade(self, routed: Routed, ctx: CallContext, trace: RouteTrace,
                         refused: BudgetExceeded) -> tuple[Candidate | None, list[Candidate], BudgetExceeded | None]:
        """A cap refused every planned attempt: re-plan with fresh budget figures (the engine downgrades
        to the cheapest model that fits, or raises BudgetExceeded)."""
        if self.policy.budgets.at_cap != "downgrade" or routed.plan.downgraded:
            raise self._with_retry_after(refused)
        try:
            fresh = await self._aroute(ctx.messages, ctx.user, {**ctx.params, **_plan_params(routed)})
        except BudgetExceeded as exc:
            raise self._with_retry_after(exc) from None
        if fresh.plan.attempts == routed.plan.attempts:
            raise self._with_retry_after(refused)
        trace.plan_reason = fresh.plan.reason
        accepted, candidates, again = await self._executor.run(fresh.plan, ctx, trace)
        if accepted is None and not candidates and again is not None:
            raise self._with_retry_after(again)
        return accepted, candidates, again

    def _with_retry_after(self, exc: BudgetExceeded) -> BudgetExceeded:
        if exc.retry_after is None and exc.window in ("minute", "hour", "day", "month"):
            _, end = window_bucket(exc.window, self._wall())
            exc.retry_after = max(1.0, float(end) - self._wall()) if end is not None else None
        return exc

    def _exhausted(self, routed: Routed, trace: RouteTrace, candidates: list[Candidate],
                   refused: BudgetExceeded | None) -> Candidate:
        if candidates and self.policy.escalation.on_exhausted == "best_answer":
            best = max(candidates, key=lambda c: (sum(o.passed for o in c.record.checks), c.attempt.strength))
            trace.model, trace.outcome = best.attempt.model, "best_answer"
            trace.escalated = len(trace.attempts) > 1
            return best
        if refused is not None and not candidates:
            raise self._with_retry_after(refused)
        why = "; ".join(f"{a.model}: {a.status} ({a.error or a.reason})" for a in trace.attempts)
        trace.outcome, trace.error = "error", f"EscalationExhausted: {why}"
        exc = EscalationExhausted(f"every attempt failed: {why}", attempts=trace.attempts, trace=trace)
        self._write(trace, routed, None)
        raise exc

    def _write(self, trace: RouteTrace, routed: Routed, chosen: Candidate | None) -> None:
        """Append the trace line. A failing sink (full disk, ...) is logged, never raised: the answer
        was paid for and must reach the caller."""
        if self.sink is None:
            return
        answer = chosen.result.content if chosen is not None else None
        try:
            self.sink.write(trace, ts=self._wall(), prompt=routed.request.text, answer=answer)
        except Exception as exc:  # noqa: BLE001
            logging.getLogger("cascade.trace").error("trace line for %s not written: %s: %s",
                                                     trace.request_id, type(exc).__name__, exc)

    # ---- sync twin -----------------------------------------------------------------------------
    def complete(self, messages: Sequence[Mapping[str, Any]], *, user: str | None = None, **params: Any) -> Any:
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
                threading.Thread(target=self._loop.run_forever, name="cascade-router", daemon=True).start()
            return self._loop

    async def aclose(self) -> None:
        """Wait for late answers still being recorded, then close what the router opened."""
        await self.gate.drain()
        from cascade import direct
        await direct.aclose()           # this loop's direct-transport session, if one was opened
        self.close()

    def close(self) -> None:
        if self._loop is not None:
            direct = sys.modules.get("cascade.direct")
            if direct is not None:      # the background loop's session (sync calls)
                try:
                    asyncio.run_coroutine_threadsafe(direct.aclose(), self._loop).result(timeout=5)
                except Exception:  # noqa: BLE001 - closing must not fail; the loop stops regardless
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
        if self._owns_store:
            self.store.close()


def _plan_params(routed: Routed) -> dict[str, Any]:
    r = routed.request
    return {k: v for k, v in (("max_tokens", r.max_tokens),) if v is not None}


def providers_loaded() -> bool:
    """Whether litellm (6-9 s to import) is imported and configured already."""
    providers = sys.modules.get("cascade.providers")
    return providers is not None and providers.is_loaded()


async def _load_providers() -> None:
    """Import litellm in a worker thread (the event loop keeps serving) before the first call, so that
    an attempt's timeout never counts the import."""
    from cascade import providers
    await asyncio.to_thread(providers.warm_up)


async def _default_call(*, stream: bool = False, transport: str = "litellm", **kwargs: Any) -> Any:
    if transport == "direct" and not stream:
        from cascade import direct
        return await direct.acall(**kwargs)
    from cascade.providers import acall
    if not stream:
        return await acall(**kwargs)
    from cascade.streaming import BufferedStream
    opened = await acall(stream=True, **kwargs)
    result = await opened.result()
    return BufferedStream(result, list(opened.chunks))
