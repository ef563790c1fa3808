"""Server-sent events of a :class:`cascade.streaming.CascadeStream`, as OpenAI sends them.

    data: {"id": "chatcmpl-<request_id>", "object": "chat.completion.chunk", "model": "cascade/<alias>",
           "choices": [{"index": 0, "delta": {...}, "finish_reason": ...}], ...}
    ...
    data: {... the last chunk ..., "cascade": {<RouteTrace>}}
    data: [DONE]

The trace is complete only once the stream has ended, so chunks go out one behind (the last one is
held until the stream ends, then sent with the ``cascade`` field). The usage-only chunk (``choices:
[]``) is sent only when the request asked for it (``stream_options.include_usage``), built from the
trace if the provider sent none. A failure after the first chunk ends the stream with an OpenAI error
event ``data: {"error": {...}}`` (the openai client raises it) and no ``[DONE]``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Callable, Mapping

import anyio
from starlette.responses import StreamingResponse

from cascade.server.errors import error_reply
from cascade.server.wire import SSE_DONE, chunk_body, sse, usage_chunk

__all__ = ["SSEStream", "SSEResponse"]

log = logging.getLogger("cascade.server")


class SSEStream:
    """The SSE byte frames of a CascadeStream whose first chunk (``first``, None if empty) was already
    read. ``close()`` (idempotent) closes the CascadeStream (releasing what it holds) and reports the
    outcome to ``on_done`` once, whether the frames were sent whole, cut short or never started."""

    def __init__(self, stream: Any, first: Any, *, include_usage: bool,
                 on_done: Callable[[str, Any], None]) -> None:
        self._stream, self._first, self._include_usage, self._on_done = stream, first, include_usage, on_done
        self.trace = stream.cascade
        self.outcome = "error"
        self._finished = self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        trace = self.trace
        try:
            held: dict[str, Any] | None = None
            saw_usage = False
            chunk = self._first
            while chunk is not None:
                body = chunk_body(chunk, trace)
                usage_only = not body.get("choices") and "usage" in body
                if not usage_only or self._include_usage:
                    saw_usage = saw_usage or usage_only
                    if held is not None:
                        yield sse(held)
                        await asyncio.sleep(0)   # let a client disconnect be noticed (and cancel us) between chunks
                    held = body
                chunk = await _next(self._stream)
            self._finished = True
            if self._include_usage and not saw_usage:
                if held is not None:
                    yield sse(held)
                held = usage_chunk(trace, int(time.time()))
            if held is None:
                held = {"id": f"chatcmpl-{trace.request_id}", "object": "chat.completion.chunk",
                        "created": int(time.time()), "model": "cascade", "choices": []}
            held["cascade"] = trace.to_dict()
            yield sse(held)
            yield SSE_DONE
            self.outcome = trace.outcome
        except Exception as exc:  # noqa: BLE001 - mid-stream failure: an OpenAI error event ends the stream
            reply = error_reply(exc)
            if reply.status == 500:
                log.error("internal error while streaming: %s", type(exc).__name__, exc_info=exc)
            self.outcome = reply.outcome
            yield sse(reply.body)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._finished:
                with anyio.CancelScope(shield=True):   # the response may be being cancelled: finish the release
                    await self._stream.aclose()
        except Exception:  # noqa: BLE001 - the stream is being abandoned
            pass
        finally:
            self._on_done(self.outcome, self.trace)


class SSEResponse(StreamingResponse):
    """A StreamingResponse that closes its SSEStream however the response ends (even if the client left
    before the first frame was sent, when the frames' generator never started)."""

    def __init__(self, events: SSEStream, headers: Mapping[str, str]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.close()


async def _next(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
