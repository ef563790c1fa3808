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

When the first chunk is slow to come (a checked answer is drained and checked whole before any of
it is sent), the response starts anyway after ``keepalive_s`` and sends ``: keep-alive`` comments
(ignored by SSE clients) every ``keepalive_s`` until it comes, so that clients and proxies do not time
the connection out; a failure in that phase is sent as the error event. A client that leaves in any
phase cancels the request (Starlette's disconnect listener cancels the response, :meth:`SSEStream.close`
cancels the walk: its reservations are released, no further attempt is made).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Callable, Mapping, Sequence

import anyio
from starlette.responses import StreamingResponse

from cascade.server.errors import error_reply
from cascade.server.wire import SSE_DONE, chunk_body, sse, usage_chunk

__all__ = ["KEEPALIVE", "SSEStream", "SSEResponse", "open_first_chunk"]

log = logging.getLogger("cascade.server")
KEEPALIVE = b": keep-alive\n\n"


async def open_first_chunk(router: Any, messages: Sequence[Any], user: str | None,
                           params: Mapping[str, Any]) -> tuple[Any, Any]:
    """Start a stream through the Router and wait for its first chunk: (stream, first or None)."""
    stream = await router.acomplete(messages, user=user, **params)
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _aclose(stream)
        raise
    return stream, first


class SSEStream:
    """The SSE byte frames of the stream that ``opening`` (a task of :func:`open_first_chunk`, done or
    not) yields. ``close()`` (idempotent) cancels the opening or closes the CascadeStream (releasing
    what it holds) and reports the outcome to ``on_done`` once, whether the frames were sent whole, cut
    short or never started. ``refusal(exc)`` may turn an opening failure into the error to report."""

    def __init__(self, opening: "asyncio.Future[tuple[Any, Any]]", *, include_usage: bool,
                 on_done: Callable[[str, Any], None], keepalive_s: float = 5.0,
                 refusal: Callable[[BaseException], BaseException | None] = lambda exc: None) -> None:
        self._opening, self._include_usage, self._on_done = opening, include_usage, on_done
        self._keepalive_s, self._refusal = keepalive_s, refusal
        self._stream: Any = None
        self._first: Any = None
        self.trace: Any = None
        self.outcome = "error"
        self._finished = self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames()

    async def _opened(self) -> AsyncIterator[bytes]:
        """Keep-alive comments until the opening is done; then its stream and first chunk are bound."""
        while not self._opening.done():
            done, _ = await asyncio.wait({self._opening}, timeout=self._keepalive_s)
            if not done:
                yield KEEPALIVE
        try:
            self._stream, self._first = self._opening.result()
        except BaseException as exc:
            raise self._refusal(exc) or exc
        self.trace = self._stream.cascade

    async def _frames(self) -> AsyncIterator[bytes]:
        try:
            async for comment in self._opened():
                yield comment
            trace = self.trace
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
            self.trace = self.trace or getattr(exc, "trace", None)
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
            with anyio.CancelScope(shield=True):   # the response may be being cancelled: finish the release
                if not self._opening.done():       # the client left while the answer was being made
                    self.outcome = "client_closed"
                    self._opening.cancel()
                    await asyncio.gather(self._opening, return_exceptions=True)
                elif self._stream is None and not self._opening.cancelled() and self._opening.exception() is None:
                    self._stream = self._opening.result()[0]
                if self._stream is not None and not self._finished:
                    await _aclose(self._stream)
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


async def _aclose(stream: Any) -> None:
    try:
        await stream.aclose()
    except Exception:  # noqa: BLE001 - closing a failed stream must not hide its error
        pass


async def _next(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
