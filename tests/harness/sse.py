"""Bodies of successful chat completions: one JSON object, or an SSE stream of chunks."""
from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .scripts import Behaviour, render_content, usage_for
from .tally import CompletionRecord, Tally


def _finish_reason(behaviour: Behaviour) -> str:
    return "length" if behaviour.kind == "truncated" else "stop"


def completion_body(behaviour: Behaviour, body: dict, model: str,
                    seq: int) -> tuple[dict[str, Any], CompletionRecord]:
    messages = body.get("messages") or []
    text = render_content(behaviour, messages)
    prompt, completion = usage_for(behaviour, messages, text)
    finish = _finish_reason(behaviour)
    payload = {
        "id": f"chatcmpl-fake-{seq}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }
    return payload, CompletionRecord(seq, model, prompt, completion, text, finish, False)


def _chunk(seq: int, model: str, created: int, delta: dict, finish: str | None) -> dict[str, Any]:
    return {"id": f"chatcmpl-fake-{seq}", "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}


def stream_events(behaviour: Behaviour, body: dict, model: str,
                  seq: int) -> tuple[list[dict[str, Any]], CompletionRecord]:
    """The chunk objects of a streamed answer (usage chunk last when include_usage is asked)."""
    messages = body.get("messages") or []
    text = render_content(behaviour, messages)
    prompt, completion = usage_for(behaviour, messages, text)
    finish, created, size = _finish_reason(behaviour), int(time.time()), max(1, behaviour.chunk_chars)
    events = [_chunk(seq, model, created, {"role": "assistant", "content": ""}, None)]
    events += [_chunk(seq, model, created, {"content": text[i:i + size]}, None)
               for i in range(0, len(text), size)]
    events.append(_chunk(seq, model, created, {}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage_chunk = _chunk(seq, model, created, {}, None)
        usage_chunk["choices"] = []
        usage_chunk["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                "total_tokens": prompt + completion}
        events.append(usage_chunk)
    return events, CompletionRecord(seq, model, prompt, completion, text, finish, True)


async def stream_completion(request: web.Request, behaviour: Behaviour, body: dict, model: str,
                            seq: int, tally: Tally) -> web.StreamResponse:
    """Write the SSE stream. The completion is booked before the first byte leaves (so a client
    never sees an answer the tally lacks) and withdrawn if the stream is dropped or the client
    leaves; a scripted mid-stream drop is never booked."""
    events, record = stream_events(behaviour, body, model, seq)
    dropping = behaviour.drop_after_chunks is not None
    if not dropping:
        tally.record_completion(record)
    response = web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        for i, event in enumerate(events):
            if dropping and i >= behaviour.drop_after_chunks:
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except ConnectionError:
        tally.withdraw_completion(seq)
    except BaseException:
        tally.withdraw_completion(seq)
        raise
    return response
