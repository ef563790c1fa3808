"""Bodies of successful chat completions: one JSON object, or an SSE stream of chunks."""
from __future__ import annotations

import json
import re
import time
from typing import Any

from aiohttp import web

from .scripts import Behaviour, render_content, usage_for

_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")


def logprobs_for(behaviour: Behaviour, body: dict, text: str) -> dict[str, Any] | None:
    """OpenAI's ``choices[0].logprobs`` of ``text`` when the request asks (``logprobs: true``): words,
    punctuation and their leading spaces as tokens, each with the behaviour's ``logprob`` and, with
    ``top_logprobs: n``, n alternatives (the token itself first, the next ``margin`` lower); a token longer
    than the behaviour's ``chunk_chars`` is cut into pieces of that size."""
    if not body.get("logprobs"):
        return None
    n = int(body.get("top_logprobs") or 0)
    content = []
    size = max(1, behaviour.chunk_chars)         # a long word is several tokens (and stream chunks)
    tokens = [t[i:i + size] for t in _TOKEN.findall(text) for i in range(0, len(t), size)]
    for token in tokens:
        top = [{"token": token, "logprob": behaviour.logprob, "bytes": list(token.encode())}]
        top += [{"token": f"<alt{i}>", "logprob": behaviour.logprob - behaviour.margin - (i - 1) * 0.5, "bytes": None}
                for i in range(1, n)]
        content.append({"token": token, "logprob": behaviour.logprob, "bytes": list(token.encode()),
                        "top_logprobs": top[:n]})
    return {"content": content}
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
                     "logprobs": logprobs_for(behaviour, body, text), "finish_reason": finish}],
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
    logprobs = logprobs_for(behaviour, body, text)
    if logprobs is None:
        events += [_chunk(seq, model, created, {"content": text[i:i + size]}, None)
                   for i in range(0, len(text), size)]
    else:       # one token per chunk, its logprobs beside it
        for token in logprobs["content"]:
            event = _chunk(seq, model, created, {"content": token["token"]}, None)
            event["choices"][0]["logprobs"] = {"content": [token]}
            events.append(event)
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
