"""The fake provider's own books: every request received and every successful completion returned.

Tests compare the router's ledger with this tally (tokens × price), check the headers a call
sent (``Authorization: Bearer ...``) and the raw bodies (which model saw an image part).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as received. ``outcome`` is the behaviour kind the server chose
    (``"answer"``, ``"http_error:429"``, ``"drop"``, ...)."""

    seq: int
    model: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: Any
    outcome: str
    stream: bool
    received_at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def messages(self) -> list:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def part_types(self) -> set[str]:
        """Types of the content parts sent (``{"text", "image_url"}``); plain strings count as text."""
        types: set[str] = set()
        for m in self.messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, str):
                types.add("text")
            elif isinstance(content, list):
                types.update(str(p.get("type")) for p in content if isinstance(p, dict))
        return types


@dataclass(frozen=True)
class CompletionRecord:
    """A successful (HTTP 200, well-formed, fully written) completion and the usage it reported."""

    seq: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    content: str
    finish_reason: str
    stream: bool


@dataclass(frozen=True)
class ModelTally:
    model: str
    requests: tuple[RequestRecord, ...] = ()
    completions: tuple[CompletionRecord, ...] = ()

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    @property
    def n_completions(self) -> int:
        return len(self.completions)

    @property
    def prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.completions)

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.completions)

    def cost(self, input_per_token: float, output_per_token: float) -> float:
        return self.prompt_tokens * input_per_token + self.completion_tokens * output_per_token

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.requests:
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        return counts

    def summary(self) -> dict[str, Any]:
        return {"requests": self.n_requests, "completions": self.n_completions,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "outcomes": self.outcomes()}


@dataclass
class Tally:
    """Thread-safe; reading returns snapshots. ``tally["deepseek-chat"]`` is a :class:`ModelTally`
    (empty for a model never called)."""

    _requests: list[RequestRecord] = field(default_factory=list)
    _completions: list[CompletionRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0

    # writing (server side)
    def record_request(self, *, model: str, path: str, headers: dict[str, str], raw_body: bytes,
                       body: Any, outcome: str, stream: bool) -> int:
        with self._lock:
            self._seq += 1
            self._requests.append(RequestRecord(self._seq, model, path, headers, raw_body, body,
                                                outcome, stream, time.time()))
            return self._seq

    def record_completion(self, record: CompletionRecord) -> None:
        with self._lock:
            self._completions.append(record)

    def withdraw_completion(self, seq: int) -> None:
        with self._lock:
            self._completions = [c for c in self._completions if c.seq != seq]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._completions.clear()

    # reading (test side)
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def completions(self) -> list[CompletionRecord]:
        with self._lock:
            return list(self._completions)

    def models(self) -> list[str]:
        return sorted({r.model for r in self.requests})

    def __getitem__(self, model: str) -> ModelTally:
        return ModelTally(model, tuple(r for r in self.requests if r.model == model),
                          tuple(c for c in self.completions if c.model == model))

    def __iter__(self) -> Iterator[str]:
        return iter(self.models())

    @property
    def n_requests(self) -> int:
        with self._lock:
            return len(self._requests)

    def cost(self, prices: dict[str, tuple[float, float]]) -> float:
        """Total cost with ``{model: (input_per_token, output_per_token)}``."""
        return sum(self[m].cost(*prices[m]) for m in self.models() if m in prices)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"models": {m: self[m].summary() for m in self.models()}}
        if full:
            out["requests"] = [_request_json(r) for r in self.requests]
            out["completions"] = [c.__dict__ for c in self.completions]
        return out


def _request_json(r: RequestRecord) -> dict[str, Any]:
    d = dict(r.__dict__)
    d["raw_body"] = r.raw_body.decode("utf-8", "replace")
    return d


def summary_json(tally: Tally, *, full: bool = False) -> str:
    return json.dumps(tally.to_dict(full=full))
