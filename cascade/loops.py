"""Ending an event loop of ours cleanly: nothing left pending, litellm's logging worker flushed first.

litellm keeps one process-wide logging worker (``GLOBAL_LOGGING_WORKER``) whose queue and task are bound
to the loop of the first call that used it. When a later call runs on another loop (a second Router's
thread, or ``asyncio.run(router.acomplete(...))`` after ``router.complete(...)``) it rebinds and leaves
its old task waiting forever on the first loop; stopping that loop then prints ``Task was destroyed but
it is pending! ... LoggingWorker._worker_loop()`` (the old task is garbage-collected with the old queue
it waits on). So:

- before each litellm call, :func:`adopt_litellm_worker` looks whether the worker is bound to another
  loop; if so its old tasks are kept referenced and the old worker task is cancelled on its own loop
  (where it ends cleanly), before litellm rebinds;
- a Router's background loop is settled before it stops (:func:`settle`: the worker's queued callbacks
  are run and the worker stopped when it is bound to this loop, then every other task still pending here
  is cancelled and awaited) and closed once its thread has left ``run_forever``
  (:func:`run_forever_then_close`), after ending whatever was handed to it in between (litellm closes
  a recycled HTTP session on the loop that owns it while that loop still runs: that close, and the
  task it starts, end there instead of being destroyed pending with the loop). The Router waits for
  the thread, so a loop it stopped is closed, not merely stopping, when ``close()`` returns.
"""
from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = ["adopt_litellm_worker", "settle", "run_forever_then_close"]

_WORKER_MODULE = "litellm.litellm_core_utils.logging_worker"
_TIMEOUT_S = 5.0
_ROUNDS = 5
_ORPHANS: set[asyncio.Task[Any]] = set()       # litellm's tasks of a loop it left, until they end there


def adopt_litellm_worker() -> None:
    """Call on the loop about to call litellm: if litellm's logging worker lives on another loop, end its
    old worker task there (and keep its tasks referenced until they are done) before litellm rebinds."""
    worker = _litellm_worker()
    if worker is None:
        return
    bound = getattr(worker, "_bound_loop", None)
    if bound is None or bound is asyncio.get_running_loop():
        return
    task = getattr(worker, "_worker_task", None)
    tracked = (task, getattr(worker, "_timeout_summary_task", None), *getattr(worker, "_running_tasks", ()),
               *getattr(worker, "_overflow_tasks", ()))
    left = [t for t in tracked if t is not None and not t.done()]
    for t in left:
        _ORPHANS.add(t)
        t.add_done_callback(_ORPHANS.discard)
    if task is not None and not task.done() and not bound.is_closed():
        bound.call_soon_threadsafe(task.cancel)     # it only waits for the queue litellm is about to drop


async def settle() -> None:
    """Run on the loop about to stop: flush and stop litellm's logging worker if it lives on this loop,
    then cancel and await every other pending task of the loop."""
    loop = asyncio.get_running_loop()
    worker = _litellm_worker()
    if worker is not None and getattr(worker, "_bound_loop", None) is loop:
        try:
            await asyncio.wait_for(worker.flush(), _TIMEOUT_S)     # spend callbacks queued: run, not dropped
        except (Exception, asyncio.TimeoutError):  # noqa: BLE001 - closing must not fail
            pass
        await worker.stop(discard_pending=True, timeout=_TIMEOUT_S)
    await _cancel_pending(loop)


def run_forever_then_close(loop: asyncio.AbstractEventLoop) -> None:
    """Thread target of a background loop: serve until stopped, end every task still pending (work
    handed to the loop after it was settled included), then close the loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(_end_pending())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


async def _end_pending() -> None:
    """Let callbacks already handed to the loop start their tasks, then cancel and await what is left."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await _cancel_pending(asyncio.get_running_loop())


async def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await every other pending task of ``loop``, again while ending them starts new ones
    (a session's close starts its connector's); a task ignoring its cancellation is waited for at most
    ``_TIMEOUT_S`` per round."""
    current = asyncio.current_task()
    for _ in range(_ROUNDS):
        pending = [t for t in asyncio.all_tasks(loop) if t is not current and not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=_TIMEOUT_S)


def _litellm_worker() -> Any:
    module = sys.modules.get(_WORKER_MODULE)          # never imports litellm: only if a call already did
    return getattr(module, "GLOBAL_LOGGING_WORKER", None)
