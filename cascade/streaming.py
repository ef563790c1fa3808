"""Streaming: ``await router.acomplete(..., stream=True)`` returns a :class:`CascadeStream` of
OpenAI-shaped chunks (litellm's ``ModelResponseStream``); its ``.cascade`` trace is complete once the
stream has ended.

Two modes, chosen by the policy, both following the one walk (:mod:`policies.walk`):
- **buffered** (default whenever an attempt has answer checks): each attempt's stream is drained and
  checked before anything is released, so a failed cheap answer is never shown; the caller then gets
  the accepted answer's chunks (:meth:`cascade.executor.LiveExecutor.run`).
- **direct** (``escalation.stream_unchecked: true``, or no checks): chunks flow as they arrive
  (:meth:`cascade.executor.LiveExecutor.stream`). Failures before the first chunk fall back to the next
  attempt; after it there is nothing to escalate to, and the error is raised to the caller mid-stream.
  Checks are not run.
Both reserve, settle and release budget exactly as ``acomplete`` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Sequence

from cascade.executor import WalkResult
from cascade.trace import RouteTrace

if TYPE_CHECKING:
    from cascade.router import RequestRun, Router


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


async def replay_chunks(chunks: list[Any]) -> AsyncIterator[Any]:
    for chunk in chunks:
        yield chunk


async def astream(router: "Router", messages: Sequence[Mapping[str, Any]], *, user: str | None = None,
                  prelude: Any = None, **params: Any) -> CascadeStream:
    params = {k: v for k, v in params.items() if k != "stream"}
    policy = router.policy
    checked = any(policy.checks_for(r) for rungs in policy.escalation.ladders.values() for r in rungs)
    buffered = checked and not policy.escalation.stream_unchecked
    run = await router.begin(messages, user, {**params, "stream": True}, stream=buffered, prelude=prelude)
    if buffered:
        chosen = await router.walk(run)
        return CascadeStream(replay_chunks(chosen.result.chunks), run.trace)
    return CascadeStream(_direct_chunks(router, run), run.trace)


class StreamClosed(Exception):
    """How a trace records a stream its caller closed before the end (a value, never raised)."""


async def _direct_chunks(router: "Router", run: "RequestRun") -> AsyncIterator[Any]:
    ended: list[WalkResult] = []
    try:
        async for chunk in router.executor.stream(run.routed.plan, run.ctx, run.trace, ended,
                                                  replan=lambda: router.replan(run)):
            yield chunk
    except GeneratorExit:
        router.finish(run, StreamClosed("the caller closed the stream before its end"))
        raise
    except BaseException as exc:
        router.finish(run, exc)
        raise
    router.finish(run, ended[0])
    await router.recall.after(run.prelude, run.trace, None)     # pins the session; a direct stream is never cached
