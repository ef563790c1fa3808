"""Shadow sampling: for a sample of the requests a cheaper rung answered, the policy's ``shadow``
models are asked too — in the background, after the response went to the caller — and the cheap
answer is labelled adequate or not (agreement of final answers, else the judge). For a sampled
request one of the ``shadow`` models answered (routed to it, or escalated), the ladder's cheap first
rung is the shadow instead (exploration, line marked ``explores``): its answer from the walk when it
ran (``reused``, no call), else one call; the label then says whether *that* answer would have done,
so a router that over-escalates learns where the cheap model was enough.

    Router.finish() ──► ShadowSampler.after(run, accepted)    sampled? stronger models / cheap rung to ask?
                             └── task: per model LiveExecutor.paid_answer (the walk's own admit /
                                 retries / settle), label, judge, one ``kind: shadow`` trace line
    Router.aclose() / close() ──► ShadowSampler.drain()        waits ``drain_s``, then cancels

Shadow and judge calls are reserved against a cap of their own (``budget_usd_per_day``, scope
:data:`policies.learning.SHADOW_USER`), never against the user's or the global caps; their failures
are logged and traced, never raised.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from policies.budget import Cap
from policies.learning import (SHADOW_USER, ShadowConfig, agreement_label, explore_model, judge_messages,
                               judge_verdict, sampled, shadow_attempt, shadow_models)

from cascade.executor import CallContext, Candidate
from cascade.trace import RouteTrace

log = logging.getLogger("cascade.shadow")


class ShadowSampler:
    def __init__(self, router: Any) -> None:
        self.router = router
        self.config: ShadowConfig | None = router.policy.shadow
        self.caps = (Cap("user", "day", self.config.budget_usd_per_day),) if self.config else ()
        self._tasks: set[asyncio.Task] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def after(self, run: Any, accepted: Candidate | None) -> None:
        """Start the shadow calls of a finished request when it is sampled: the listed stronger models,
        or, for an answer of a listed model, the ladder's cheap first rung (exploration)."""
        cfg = self.config
        if cfg is None or accepted is None or not sampled(run.trace.request_id, cfg.rate, cfg.seed):
            return
        policy = self.router.policy
        strengths = {alias: spec.strength for alias, spec in policy.catalog.items()}
        answered_by, content = accepted.attempt.model, accepted.result.content or ""
        models = shadow_models(cfg, strengths, answered_by)
        if models:
            work = self._shadow(run, content, answered_by, models)
        else:
            cheap = explore_model(cfg, policy.escalation.ladders.get(run.trace.modality, ()), strengths, answered_by)
            if cheap is None:
                return
            work = self._explore(run, content, answered_by, cheap)
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the shadow calls of this loop up to ``drain_s``; cancel what is left."""
        loop = asyncio.get_running_loop()
        mine = [t for t in self._tasks if t.get_loop() is loop]
        if not mine or self.config is None:
            return
        _, late = await asyncio.wait(mine, timeout=self.config.drain_s)
        for task in late:
            task.cancel()
        if late:
            log.warning("%d shadow call(s) still running at the drain deadline (%.1fs): cancelled",
                        len(late), self.config.drain_s)
            await asyncio.gather(*late, return_exceptions=True)

    async def _shadow(self, run: Any, cheap: str, answered_by: str, models: list[str]) -> None:
        for model in models:
            doc = self._line(run, answered_by, model)
            await self._guarded(doc, self._ask(run, cheap, model, doc))

    async def _explore(self, run: Any, strong: str, answered_by: str, cheap_model: str) -> None:
        """The cheap rung's answer to a request a listed model answered: the one the walk already got
        (an escalated request; no call), else one shadow call; labelled against the returned answer."""
        doc = self._line(run, answered_by, cheap_model)
        doc["explores"] = True
        await self._guarded(doc, self._ask_cheap(run, strong, cheap_model, doc))

    async def _guarded(self, doc: dict[str, Any], work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            doc.update(status="cancelled", error="shadow call cancelled at the drain deadline")
            self._write(doc)
            raise
        except Exception as exc:  # noqa: BLE001 - a shadow call never fails anything
            log.error("shadow call of %s for request %s failed: %s: %s", doc["model"], doc["request_id"],
                      type(exc).__name__, exc)
            doc.update(status="error", error=f"{type(exc).__name__}: {exc}")
        self._write(doc)

    async def _ask(self, run: Any, cheap: str, model: str, doc: dict[str, Any]) -> None:
        strong = await self._call(run, model, doc)
        if strong is not None:
            await self._label(run, cheap, strong, doc)

    async def _ask_cheap(self, run: Any, strong: str, model: str, doc: dict[str, Any]) -> None:
        earlier = [a for a in run.trace.attempts if a.model == model and a.status in ("ok", "check_failed")
                   and isinstance(a.answer, str)]
        if earlier:
            doc.update(status="ok", reused=True, prompt_tokens=earlier[-1].prompt_tokens,
                       completion_tokens=earlier[-1].completion_tokens, answer=earlier[-1].answer)
            cheap: str | None = earlier[-1].answer
        else:
            cheap = await self._call(run, model, doc)
        if cheap is not None:
            await self._label(run, cheap, strong, doc)

    async def _call(self, run: Any, model: str, doc: dict[str, Any]) -> str | None:
        """One shadow call of ``model`` (the walk's admit / retries / settle, the shadow cap): its text."""
        attempt = shadow_attempt(self.router.policy, run.routed.request, model, f"shadow of {doc['answered_by']}")
        trace = self._trace(run)
        paid = await self.router.executor.paid_answer(attempt, self._context(run, run.ctx.messages), trace)
        if paid is None:
            doc.update(status="error" if any(a.status == "error" for a in trace.attempts) else "skipped",
                       error=trace.attempts_summary(), cost_usd=trace.cost_usd)
            return None
        result, cost = paid
        doc.update(status="ok", prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                   cost_usd=cost, latency_s=result.latency_s, answer=result.content or "")
        return result.content or ""

    async def _label(self, run: Any, cheap: str, strong: str, doc: dict[str, Any]) -> None:
        """Whether the cheap answer was adequate: agreement of final answers, else the judge."""
        prompt = run.ctx.prompt_text
        verdict = agreement_label(prompt, cheap, strong)
        label = {"adequate": verdict, "source": "agreement" if verdict is not None else None,
                 "reason": "" if verdict is not None else "no final answers to compare"}
        if verdict is None and self.config is not None and self.config.judge is not None:
            label = await self._judge(run, prompt, strong, cheap, doc)
        doc["label"] = label

    async def _judge(self, run: Any, prompt: str, strong: str, cheap: str, doc: dict[str, Any]) -> dict[str, Any]:
        judge = self.config.judge                                # type: ignore[union-attr]
        messages = judge_messages(judge.rubric, prompt, strong, cheap)
        attempt = shadow_attempt(self.router.policy, run.routed.request, judge.model, "judge of a shadowed answer")
        trace = self._trace(run)
        paid = await self.router.executor.paid_answer(attempt, self._context(run, messages), trace)
        if paid is None:
            doc["judge"] = {"model": judge.model, "verdict": None, "cost_usd": trace.cost_usd,
                            "error": trace.attempts_summary()}
            return {"adequate": None, "source": None, "reason": "the judge did not answer"}
        result, cost = paid
        verdict = judge_verdict(result.content or "")
        doc["judge"] = {"model": judge.model, "verdict": verdict, "prompt_tokens": result.prompt_tokens,
                        "completion_tokens": result.completion_tokens, "cost_usd": cost}
        doc["judge_answer"] = result.content or ""
        return {"adequate": verdict, "source": "judge" if verdict is not None else None,
                "reason": "" if verdict is not None else "the judge gave no ADEQUATE / INADEQUATE verdict"}

    def _context(self, run: Any, messages: Any) -> CallContext:
        policy = self.router.policy
        return CallContext(run.trace.request_id, SHADOW_USER, messages, dict(run.ctx.params), self.caps,
                           self.router._clock() + policy.retries.deadline_s, run.ctx.prompt_text)

    def _trace(self, run: Any) -> RouteTrace:
        return RouteTrace(run.trace.request_id, self.router.policy.name, run.trace.score, run.trace.modality,
                          SHADOW_USER)

    def _line(self, run: Any, answered_by: str, model: str) -> dict[str, Any]:
        return {"kind": "shadow", "request_id": run.trace.request_id, "user": run.trace.user,
                "policy": self.router.policy.name, "answered_by": answered_by, "model": model,
                "status": "pending", "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
                "latency_s": 0.0, "error": None, "label": {"adequate": None, "source": None, "reason": ""},
                "judge": None}

    def _write(self, doc: dict[str, Any]) -> None:
        sink = self.router.sink
        if sink is None:
            return
        doc["ts"] = self.router._wall()
        try:
            sink.write_record(doc, text_fields=("answer", "judge_answer"))
        except Exception as exc:  # noqa: BLE001
            log.error("shadow line for %s not written: %s: %s", doc["request_id"], type(exc).__name__, exc)
