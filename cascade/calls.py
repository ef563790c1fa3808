"""What every transport takes and returns: one call's arguments (:class:`CallSpec`) and one answered
call (:class:`CallResult`), plus the OpenAI-shaped :class:`ChatCompletion` a transport without
litellm parses answers into. No litellm here: a Router whose models all use ``transport: direct``
never imports it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from policies.errors import InvalidRequestError

RESERVED_PARAMS = frozenset({"model", "messages", "api_base", "base_url", "api_key", "timeout",
                             "stream", "stream_options", "num_retries", "max_retries"})


@dataclass(frozen=True)
class CallSpec:
    """One call of one catalog model: what a :class:`cascade.transport.Transport` is given."""

    litellm_model: str
    messages: list
    api_base: str | None
    api_key: str | None
    timeout_s: float
    params: dict
    model_alias: str

    def kwargs(self) -> dict[str, Any]:
        return {"litellm_model": self.litellm_model, "messages": self.messages, "api_base": self.api_base,
                "api_key": self.api_key, "timeout_s": self.timeout_s, "params": self.params,
                "model_alias": self.model_alias}


@dataclass(frozen=True)
class CallResult:
    """One successful call. ``usage_reported`` is False when the provider sent no usage and the
    token counts are an estimate; ``first_chunk_s`` is set for streams."""

    response: Any                 # OpenAI-shaped: litellm.ModelResponse or ChatCompletion
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    latency_s: float
    model_alias: str
    litellm_model: str
    usage_reported: bool = True
    first_chunk_s: float | None = None
    logprobs: tuple | None = None   # classifiers.confidence.TokenLogprob per answer token, when the provider sent them


def check_call_args(messages: list, params: dict) -> None:
    """What every transport refuses before calling: no messages, or params that are call arguments."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty list")
    clash = RESERVED_PARAMS.intersection(params)
    if clash:
        raise InvalidRequestError(f"params may not set {sorted(clash)}; they are call arguments")


Estimate = Callable[[str, list, str], tuple[int, int]]


def make_result(response: Any, content: str, finish_reason: str | None, usage: Any, *, started: float,
                model_alias: str, litellm_model: str, messages: list, estimate: Estimate,
                first_chunk_s: float | None = None, logprobs: Any = None) -> CallResult:
    """The CallResult of an answer; ``estimate(litellm_model, messages, content)`` counts tokens when
    the provider reported no usage."""
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    reported = isinstance(prompt, int) and isinstance(completion, int)
    if not reported:
        prompt, completion = estimate(litellm_model, messages, content)
    return CallResult(response, content, int(prompt), int(completion), finish_reason,
                      time.perf_counter() - started, model_alias, litellm_model, reported, first_chunk_s,
                      tuple(logprobs) if logprobs else None)


def estimate_with_tokenizer(litellm_model: str, messages: list, content: str) -> tuple[int, int]:
    """Token counts with the bundled DeepSeek tokenizer (no litellm): the direct transport's estimate,
    the prompt counted as the planner counts it (text, per-message overhead, images, document pages)."""
    from cascade.tokens import count_prompt_tokens, count_text_tokens
    from policies.request import describe_messages
    try:
        facts = describe_messages(messages)
        prompt = count_prompt_tokens(facts.text, n_messages=len(messages), n_images=facts.n_images,
                                     document_pages=facts.document_pages)
        completion = count_text_tokens(content)
    except Exception:  # noqa: BLE001 - an estimate must not fail the call
        prompt = len(str(messages)) // 4 + 1
        completion = len(content) // 4 + (1 if content else 0)
    return int(prompt), int(completion)


# ── an OpenAI chat.completion, parsed without litellm ───────────────────────────────────────

class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: str = "assistant"
    content: str | None = None


class Choice(_Open):
    index: int = 0
    message: Message = Field(default_factory=Message)
    finish_reason: str | None = None


class Usage(_Open):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatCompletion(_Open):
    """The provider's chat.completion as it sent it (unknown fields kept), with attribute access
    like litellm's ``ModelResponse`` (``resp.choices[0].message.content``, ``resp.usage``);
    ``resp.cascade`` (the RouteTrace) is not part of ``model_dump()``."""

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: Usage | None = None
    cascade: Any = Field(default=None, exclude=True, repr=False)


# ── streams as the executor hands them on ───────────────────────────────────────────────────

class OutputCap:
    """Stops a stream whose provider sends more than the ``max_tokens`` asked for (some ignore it):
    past ``1.25 x max_tokens + 16`` tokens (room for another model's tokenizer counting differently)
    the stream is cut, ``finish_reason`` "length". Counting is free until the text's UTF-8 bytes (an
    upper bound of its DeepSeek tokens) pass the cap; then each piece is tokenized as it comes."""

    def __init__(self, max_tokens: Any) -> None:
        ok = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
        self.limit = int(max_tokens * 1.25) + 16 if ok else None
        self._bytes, self._tokens = 0, -1
        self.cut = False

    def take(self, piece: str, text_so_far: Callable[[], str]) -> bool:
        """Count ``piece``; True when the stream is now over the cap and must be cut."""
        if self.limit is None or self.cut or not piece:
            return self.cut
        from cascade.tokens import count_text_tokens
        if self._tokens < 0:
            self._bytes += len(piece) if piece.isascii() else len(piece.encode("utf-8", "surrogatepass"))
            if self._bytes <= self.limit:
                return False
            self._tokens = count_text_tokens(text_so_far())
        else:
            self._tokens += count_text_tokens(piece)
        self.cut = self._tokens > self.limit
        return self.cut


@dataclass
class BufferedStream:
    """A drained stream: the call's result plus the chunks to replay to the caller."""

    result: CallResult
    chunks: list

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)


class PrimedStream:
    """An opened provider stream whose first chunk has already arrived (so that failures before any
    output are retried or fallen back from, like a non-streaming call)."""

    def __init__(self, stream: Any, first: Any) -> None:
        self._stream, self._first = stream, first

    def __aiter__(self) -> "PrimedStream":
        return self

    async def __anext__(self) -> Any:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._stream.__anext__()

    def final(self) -> CallResult:
        return self._stream.final()
