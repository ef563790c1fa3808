"""A request whose client has gone is cancelled: no further attempt, no escalation, its reservations
released (the executor's ``finally`` blocks), nothing billed beyond what a provider already served.

    response = await until_disconnect(request.receive, handle(...))   # ClientDisconnected if it left

One watcher task per request reads the ASGI ``receive`` channel (the body has been read by then) and
cancels the handling task at ``http.disconnect``. Once a streaming response has started, Starlette's
own disconnect listener does the same for the stream.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

__all__ = ["ClientDisconnected", "until_disconnect"]

T = TypeVar("T")
Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientDisconnected(Exception):
    """The client closed the connection before the answer was ready (answered 499 to nobody)."""


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` in this task; cancel it if the client disconnects first."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.ensure_future(_disconnected(receive))
    state = {"left": False, "finished": False}

    def cancel_work(done: "asyncio.Future[None]") -> None:
        if not state["finished"] and not done.cancelled() and done.exception() is None:
            state["left"] = True
            task.cancel()
    watcher.add_done_callback(cancel_work)
    try:
        return await work
    except asyncio.CancelledError:
        if state["left"]:
            task.uncancel()
            raise ClientDisconnected("the client closed the connection") from None
        raise
    finally:
        state["finished"] = True
        watcher.cancel()


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
