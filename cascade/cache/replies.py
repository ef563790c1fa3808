"""A cached answer as the caller would have received it from a provider: a chat.completion, or the
chunks of a well-formed stream (a role chunk, the content, a finish_reason chunk — the server adds
the trace to the last and ``[DONE]`` after it). Usage is zero: no tokens were processed."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cascade.calls import ChatCompletion, Choice, Message, Usage


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Delta(_Open):
    role: str | None = None
    content: str | None = None


class ChunkChoice(_Open):
    index: int = 0
    delta: Delta = Field(default_factory=Delta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Open):
    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice]


def completion_of(entry: dict[str, Any], request_id: str, created: int) -> ChatCompletion:
    message = Message(**entry["message"])
    return ChatCompletion(id=f"chatcmpl-{request_id}", created=created, model=str(entry.get("litellm_model", "")),
                          choices=[Choice(index=0, message=message, finish_reason=entry["finish_reason"])],
                          usage=Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0))


def chunks_of(entry: dict[str, Any], request_id: str, created: int) -> list[ChatCompletionChunk]:
    head = {"id": f"chatcmpl-{request_id}", "created": created, "model": str(entry.get("litellm_model", ""))}
    message = entry["message"]
    out = [ChatCompletionChunk(**head, choices=[ChunkChoice(delta=Delta(role="assistant", content=""))])]
    if message.get("content"):
        out.append(ChatCompletionChunk(**head, choices=[ChunkChoice(delta=Delta(content=message["content"]))]))
    if message.get("tool_calls"):
        calls = [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]
        out.append(ChatCompletionChunk(**head, choices=[ChunkChoice(delta=Delta(tool_calls=calls))]))
    out.append(ChatCompletionChunk(**head, choices=[ChunkChoice(finish_reason=entry["finish_reason"])]))
    return out
