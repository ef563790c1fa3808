"""What goes on the wire: response bodies, SSE events and the ``x-cascade-trace`` header.

Response ``model``: ``cascade/<alias>``, the policy catalog's alias of the model that answered (e.g.
``cascade/deepseek-v2``; the catalog maps the alias to the provider's model). ``cascade`` alone when no
model answered.
Response ``id``: ``chatcmpl-<request_id>``, the trace's request id (the line in the JSONL trace file).

Body extension ``cascade``: the whole RouteTrace (``RouteTrace.to_dict()``: model, escalated, cost_usd,
latency_s, outcome, attempts with their checks, ...). Header ``x-cascade-trace``: compact JSON of
``{"request_id", "model", "escalated", "cost_usd", "outcome", "attempts": [[model, status], ...]}``
(plus ``unrecorded_cost_usd`` when the budget store did not take part of the cost: it was spooled),
at most :data:`MAX_TRACE_HEADER` bytes (attempts beyond that are dropped and counted in ``"more"``).
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_TRACE_HEADER", "TRACE_HEADER", "completion_body", "chunk_body", "sse", "SSE_DONE",
           "trace_header", "usage_chunk"]

TRACE_HEADER = "x-cascade-trace"
MAX_TRACE_HEADER = 2048
SSE_DONE = b"data: [DONE]\n\n"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_header_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str).encode


def public_model(trace: Any) -> str:
    return f"cascade/{trace.model}" if trace is not None and trace.model else "cascade"


def completion_body(resp: Any, trace: Any) -> bytes:
    """The OpenAI chat.completion JSON of a litellm ModelResponse, with the ``cascade`` extension."""
    body = resp.model_dump()
    body.pop("cascade", None)
    body["id"] = f"chatcmpl-{trace.request_id}"
    body["model"] = public_model(trace)
    body["cascade"] = trace.to_dict()
    return _dumps(body).encode("utf-8")


def chunk_body(chunk: Any, trace: Any, created: int | None = None) -> dict[str, Any]:
    """The OpenAI chat.completion.chunk dict of a litellm stream chunk."""
    body = chunk.model_dump(exclude_none=True)
    body.pop("cascade", None)
    body["id"] = f"chatcmpl-{trace.request_id}"
    body["object"] = "chat.completion.chunk"
    body["model"] = public_model(trace)
    if created is not None:
        body["created"] = created
    return body


def usage_chunk(trace: Any, created: int) -> dict[str, Any]:
    """A usage-only final chunk built from the trace (when the provider sent none)."""
    used = [a for a in trace.attempts if a.model == trace.model and a.status in ("ok", "check_failed")]
    p = used[-1].prompt_tokens if used else 0
    c = used[-1].completion_tokens if used else 0
    return {"id": f"chatcmpl-{trace.request_id}", "object": "chat.completion.chunk", "created": created,
            "model": public_model(trace), "choices": [],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(event).encode("utf-8") + b"\n\n"


def trace_header(trace: Any) -> str:
    """Compact, ASCII, size-bounded JSON summary of a trace for the ``x-cascade-trace`` header."""
    attempts = [[a.model, a.status] for a in trace.attempts]
    doc: dict[str, Any] = {"request_id": trace.request_id, "model": trace.model, "escalated": trace.escalated,
                           "cost_usd": trace.cost_usd, "outcome": trace.outcome, "attempts": attempts}
    if getattr(trace, "unrecorded_cost_usd", 0.0):
        doc["unrecorded_cost_usd"] = trace.unrecorded_cost_usd
    text = _header_dumps(doc)
    dropped = 0
    while len(text) > MAX_TRACE_HEADER and doc["attempts"]:
        doc["attempts"] = doc["attempts"][:-1]
        dropped += 1
        doc["more"] = dropped
        text = _header_dumps(doc)
    return text
