"""Scripted behaviours of the fake provider: what one model answers, and how it fails.

A :class:`ModelScript` says what a model does per request: first the behaviours of its ``queue``
(one per request, in order), then a seeded random ``mix`` of faults, else its ``default``.

    Behaviour kinds                 what the server does
    ─────────────────────────────   ─────────────────────────────────────────────────────────
    answer(text | fn(messages))     200 with the text, finish_reason "stop", usage tokens
    truncated(text)                 200, the first half of the text, finish_reason "length"
    empty()                         200, content "", finish_reason "stop"
    wrong_format(text)              200, a text without the expected answer
    http_error(status, body, ra)    the status with an OpenAI-style error body (+ Retry-After)
    rate_limited(retry_after)       429 (Retry-After header only when retry_after is not None)
    context_length_exceeded()       400, code "context_length_exceeded"
    timeout(seconds)                sleeps (default one hour) before answering
    drop()                          closes the connection without a response
    malformed()                     200 with a body that is not JSON

Every kind also takes ``latency`` (seconds, or a ``(low, high)`` range drawn from the script's
seeded ``random.Random``, or ``("keyed", low, high)``: a point of that range fixed by the last user
message, :func:`keyed_latency`, so a benchmark knows each request's provider time). The JSON form (subprocess mode) is the keyword form of the same
constructors: ``{"kind": "http_error", "status": 429, "retry_after": 2}``; see :func:`script_from_json`.
"""
from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence, Union

Content = Union[str, Callable[[list], str], None]
Latency = Union[float, tuple[float, float], tuple[str, float, float]]

ANSWER_KINDS = frozenset({"answer", "truncated", "empty", "wrong_format"})
KINDS = ANSWER_KINDS | {"http_error", "timeout", "drop", "malformed"}
DEFAULT_WRONG_TEXT = "I am not able to give a definite answer to that."


@dataclass(frozen=True, eq=False)
class Behaviour:
    """One scripted response. Build it with the constructors below rather than directly."""

    kind: str = "answer"
    content: Content = None          # None: echo the last user message
    latency: Latency = 0.0
    prompt_tokens: int | None = None      # None: derived from the request (chars // 4 + 1)
    completion_tokens: int | None = None  # None: derived from the answer (chars // 4 + 1)
    status: int = 200
    body: Any = None                 # error body (dict → JSON, str → raw text)
    retry_after: float | str | None = None
    sleep_s: float = 3600.0          # for kind="timeout"
    drop_after_chunks: int | None = None  # streaming: drop the connection after n chunks
    chunk_chars: int = 8             # streaming: characters of content per chunk
    logprob: float = -0.05           # every token's logprob, when the request asks for logprobs
    margin: float = 4.0              # top-1 minus top-2 logprob of every token (top_logprobs >= 2)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown behaviour kind {self.kind!r}; expected one of {sorted(KINDS)}")

    def with_(self, **changes: Any) -> "Behaviour":
        return replace(self, **changes)


def answer(content: Content = None, *, latency: Latency = 0.0, prompt_tokens: int | None = None,
           completion_tokens: int | None = None, **kw: Any) -> Behaviour:
    return Behaviour("answer", content, latency, prompt_tokens, completion_tokens, **kw)


def truncated(content: Content = None, *, latency: Latency = 0.0, **kw: Any) -> Behaviour:
    return Behaviour("truncated", content, latency, **kw)


def empty(*, latency: Latency = 0.0, **kw: Any) -> Behaviour:
    return Behaviour("empty", "", latency, **kw)


def wrong_format(content: str = DEFAULT_WRONG_TEXT, *, latency: Latency = 0.0, **kw: Any) -> Behaviour:
    return Behaviour("wrong_format", content, latency, **kw)


def http_error(status: int, body: Any = None, retry_after: float | str | None = None, *,
               latency: Latency = 0.0) -> Behaviour:
    return Behaviour("http_error", status=status, body=body, retry_after=retry_after, latency=latency)


def rate_limited(retry_after: float | str | None = None, *, latency: Latency = 0.0) -> Behaviour:
    return http_error(429, None, retry_after, latency=latency)


def context_length_exceeded(*, latency: Latency = 0.0) -> Behaviour:
    body = {"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages "
                   "resulted in 12000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    return http_error(400, body, latency=latency)


def timeout(seconds: float = 3600.0) -> Behaviour:
    return Behaviour("timeout", sleep_s=seconds)


def drop(*, latency: Latency = 0.0, after_chunks: int | None = None) -> Behaviour:
    """Close the connection. With ``after_chunks`` (streaming only) drop mid-stream instead."""
    if after_chunks is not None:
        return Behaviour("answer", latency=latency, drop_after_chunks=after_chunks)
    return Behaviour("drop", latency=latency)


def malformed(*, latency: Latency = 0.0) -> Behaviour:
    return Behaviour("malformed", latency=latency)


# Names usable as keys of a random ``mix`` (and as ``{"kind": NAME}`` shorthands in JSON).
NAMED_FAULTS: dict[str, Callable[[], Behaviour]] = {
    "429": lambda: rate_limited(None),
    "429_retry_after": lambda: rate_limited(1),
    "400": lambda: http_error(400),
    "401": lambda: http_error(401),
    "403": lambda: http_error(403),
    "404": lambda: http_error(404),
    "500": lambda: http_error(500),
    "502": lambda: http_error(502),
    "503": lambda: http_error(503),
    "context_length_exceeded": context_length_exceeded,
    "timeout": timeout,
    "drop": drop,
    "malformed": malformed,
    "truncated": truncated,
    "empty": empty,
    "wrong_format": wrong_format,
}


@dataclass
class ModelScript:
    """What one model does: ``queue`` first, then a random ``mix`` of faults, else ``default``.

    ``mix`` maps a fault name of :data:`NAMED_FAULTS` (or a :class:`Behaviour`) to its probability;
    the probabilities must sum to at most 1, the rest goes to ``default``.
    """

    default: Behaviour = field(default_factory=answer)
    queue: list[Behaviour] = field(default_factory=list)
    mix: Mapping[Union[str, Behaviour], float] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        self.queue = list(self.queue)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._mix = [(_resolve(k), float(p)) for k, p in self.mix.items()]
        if sum(p for _, p in self._mix) > 1.0 + 1e-9:
            raise ValueError(f"mix probabilities sum to more than 1: {dict(self.mix)}")

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            if self.queue:
                return self.queue.pop(0)
            if self._mix:
                draw, acc = self._rng.random(), 0.0
                for behaviour, p in self._mix:
                    acc += p
                    if draw < acc:
                        return behaviour
            return self.default

    def draw_latency(self, latency: Latency, key: str = "") -> float:
        if isinstance(latency, (tuple, list)) and len(latency) == 3 and latency[0] == "keyed":
            return keyed_latency(key, float(latency[1]), float(latency[2]))
        if isinstance(latency, (tuple, list)):
            with self._lock:
                return self._rng.uniform(float(latency[0]), float(latency[1]))
        return float(latency)


def keyed_latency(text: str, low: float, high: float) -> float:
    """A latency in [low, high] that depends only on ``text`` (blake2b), the same in every process."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return low + (high - low) * (int.from_bytes(digest, "big") / 2.0 ** 64)


def _resolve(key: Union[str, Behaviour]) -> Behaviour:
    if isinstance(key, Behaviour):
        return key
    try:
        return NAMED_FAULTS[str(key)]()
    except KeyError:
        raise ValueError(f"unknown fault {key!r}; expected one of {sorted(NAMED_FAULTS)}") from None


# ── content ─────────────────────────────────────────────────────────────────────────────────

def message_text(message: Mapping[str, Any]) -> str:
    """The text of one message: a string content, or the text parts of a list content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def echo_answer(messages: Sequence[Mapping[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    last = message_text(users[-1]) if users else ""
    return f"Answer to: {last[:200]}"


def render_content(behaviour: Behaviour, messages: list) -> str:
    content = behaviour.content
    if content is None:
        text = echo_answer(messages)
    elif callable(content):
        text = str(content(messages))
    else:
        text = content
    if behaviour.kind == "truncated":
        return text[: max(1, len(text) // 2)]
    if behaviour.kind == "empty":
        return ""
    return text


def usage_for(behaviour: Behaviour, messages: list, text: str) -> tuple[int, int]:
    prompt = behaviour.prompt_tokens
    if prompt is None:
        prompt = sum(len(message_text(m)) for m in messages) // 4 + 1
    completion = behaviour.completion_tokens
    if completion is None:
        completion = len(text) // 4 + 1
    return prompt, completion


# ── JSON form ───────────────────────────────────────────────────────────────────────────────

def behaviour_from_json(data: Union[str, Mapping[str, Any]]) -> Behaviour:
    """``"500"`` or ``{"kind": "answer", "content": "Paris", "latency": 0.1}``.

    Extra content forms for JSON: ``{"kind": "answer", "rules": [["capital", "Paris"]],
    "content": "fallback"}`` answers the content of the first rule whose substring is in the
    last user message.
    """
    if isinstance(data, str):
        return _resolve(data)
    spec = dict(data)
    kind = str(spec.pop("kind", "answer"))
    rules = spec.pop("rules", None)
    if rules is not None:
        spec["content"] = _rules_content(rules, spec.get("content"))
    spec = _coerce(spec)
    if kind in NAMED_FAULTS:   # "429", "truncated", ...: the named fault, with overrides
        return NAMED_FAULTS[kind]().with_(**spec)
    return Behaviour(kind=kind, **spec)


def _coerce(spec: dict) -> dict:
    if isinstance(spec.get("latency"), list):
        spec["latency"] = tuple(spec["latency"])
    return spec


def _rules_content(rules: Sequence[Sequence[str]], fallback: str | None) -> Callable[[list], str]:
    pairs = [(str(a), str(b)) for a, b in rules]

    def content(messages: list) -> str:
        users = [m for m in messages if m.get("role") == "user"]
        last = message_text(users[-1]) if users else ""
        for needle, text in pairs:
            if needle in last:
                return text
        return fallback if fallback is not None else echo_answer(messages)
    return content


def script_from_json(data: Mapping[str, Any]) -> ModelScript:
    """``{"default": {...}, "queue": [...], "mix": {"429": 0.1}, "seed": 7}``."""
    unknown = set(data) - {"default", "queue", "mix", "seed"}
    if unknown:
        raise ValueError(f"unknown ModelScript keys: {sorted(unknown)}")
    default = behaviour_from_json(data["default"]) if "default" in data else answer()
    queue = [behaviour_from_json(b) for b in data.get("queue", [])]
    return ModelScript(default=default, queue=queue, mix=dict(data.get("mix", {})),
                       seed=int(data.get("seed", 0)))


def scripts_from_json(data: Mapping[str, Any]) -> dict[str, ModelScript]:
    """A script file: ``{"models": {"deepseek-chat": {<ModelScript>}, ...}, "fallback": {...}}``.

    The ``"fallback"`` script (key ``"*"`` in the result) serves every model not listed.
    """
    scripts = {name: script_from_json(s) for name, s in data.get("models", {}).items()}
    if "fallback" in data:
        scripts["*"] = script_from_json(data["fallback"])
    return scripts
