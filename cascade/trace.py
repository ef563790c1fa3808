"""RouteTrace: who answered, what it cost and why — and the JSONL sink that replay reads back.

One JSON object per request::

    {"v": 1, "request_id", "ts", "user", "policy", "score", "modality", "model", "escalated",
     "cost_usd", "unrecorded_cost_usd",   # of cost_usd, what the budget store did not take (spooled)
     "latency_s", "outcome": "ok" | "best_answer" | "error" | "refused", "error", "overrun_usd",
     "plan_reason",                        # why the plan starts where it does (the engine's reason)
     "attempts": [{"model", "status", "reason", "prompt_tokens", "completion_tokens", "cost_usd",
                   "latency_s", "error", "finish_reason", "overrun_usd",
                   "confidence": {"mean_logprob", "min_logprob", "answer_margin", "n_tokens"} | null,
                   "checks": [{"name", "passed", "reason", "score"}],
                   "answer"},     # an attempt's answer text: only when the sink keeps text
                  ],
     "prompt": ..., "answer": ...,         # text only when the sink is told to keep it
     "request_digest", "temperature",      # the request's digest (messages + answer-changing params)
     "session_id", "pinned",               # when the request named a session; pinned: started at its pin
     "cache_hit",                          # true: answered from the response cache ($0, no provider)
     "cache", "cache_saved_usd", "cache_source",   # when the policy has a response cache
     "cache_embedding_usd"}                # a semantic lookup's embedding call (not in cost_usd; reserved
                                           # and committed against the caps, in the ledger under its model;
                                           # one answered after its timeout is in the ledger only)

Beside them, lines of another ``kind``, linked by ``request_id`` (:mod:`cascade.shadow`, :mod:`cascade.feedback`)::

    {"v": 1, "kind": "shadow", "request_id", "ts", "user", "policy", "answered_by", "model",
     "status": "ok" | "error" | "skipped" | "cancelled",
     "prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "error",
     "explores": true,                     # only on exploration lines: ``model`` is the cheap rung, asked
                                           # because a listed stronger model answered (the label is of its answer)
     "reused": true,                       # only when exploring: the cheap answer is the walk's own (no call)
     "label": {"adequate": true | false | null, "source": "agreement" | "judge" | null, "reason"},
     "judge": {"model", "verdict", "prompt_tokens", "completion_tokens", "cost_usd"}
              | {"model", "verdict": null, "cost_usd", "error"}     # the judge did not answer
              | null,
     "answer", "judge_answer"}             # text only when the sink keeps it
    {"v": 1, "kind": "feedback", "request_id", "ts", "user", "score"}

A refused request (a budget cap, a bad request; :mod:`cascade.refusals`) has outcome ``refused`` and the
refusal in ``error``; refused while planning, it has no score, modality or attempt (``null``, ``[]``).

Status of an attempt: ok · retried (a failed call that was retried) · error · check_failed · skipped ·
second_opinion (the answer of an agreement check's second model, billed like any call).
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from policies.checks import CheckOutcome

from cascade.provider_errors import redact


@dataclass
class AttemptRecord:
    model: str
    status: str
    reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    finish_reason: str | None = None
    answer: str | None = field(default=None, repr=False)   # written only by a sink that keeps text
    overrun_usd: float = 0.0      # cost beyond the reservation (the provider reported more than reserved)
    confidence: dict | None = None   # mean_logprob, min_logprob, answer_margin, n_tokens (when logprobs came)

    def to_dict(self, *, with_text: bool = False) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _ATTEMPT_FIELDS}
        d["checks"] = [{"name": c.name, "passed": c.passed, "reason": c.reason, "score": c.score} for c in self.checks]
        if with_text:
            d["answer"] = self.answer
        return d


_ATTEMPT_FIELDS = ("model", "status", "reason", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
                   "error", "finish_reason", "overrun_usd", "confidence")


@dataclass
class RouteTrace:
    request_id: str
    policy: str
    score: float | None           # None: refused while planning (cascade.refusals)
    modality: str | None
    user: str | None = None
    model: str | None = None
    escalated: bool = False
    cost_usd: float = 0.0
    unrecorded_cost_usd: float = 0.0       # paid but not in the ledger when the trace ended (spooled)
    latency_s: float = 0.0
    outcome: str = "pending"
    error: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    plan_reason: str = ""
    on_attempt: Any = field(default=None, repr=False, compare=False)   # telemetry: called with each record
    on_call: Any = field(default=None, repr=False, compare=False)      # telemetry: called when a call answers
    request_digest: str | None = None      # cascade.cache.keys.request_digest: what replay's cache report keys on
    temperature: float | None = None
    session_id: str | None = None
    pinned: bool = False                   # the plan started at the session's pinned model
    cache: str | None = None               # the cache lookup: hit | miss | error | uncacheable (None: no cache)
    cache_hit: bool = False
    cache_saved_usd: float = 0.0           # a hit: what the stored answer cost when it was made
    cache_source: str | None = None        # a hit: the request id that made the stored answer
    cache_embedding_usd: float = 0.0       # the semantic lookup's embedding call (in the ledger, not in cost_usd)

    def add(self, record: AttemptRecord) -> AttemptRecord:
        self.attempts.append(record)
        self.cost_usd = sum(a.cost_usd for a in self.attempts)
        if self.on_attempt is not None:
            self.on_attempt(record)
        return record

    def call_answered(self, model: str) -> None:
        """A provider call of ``model`` answered just now (its record follows, after its checks)."""
        if self.on_call is not None:
            self.on_call(model)

    @property
    def overrun_usd(self) -> float:
        """Cost committed beyond the attempts' reservations (providers that reported more than reserved)."""
        return sum(a.overrun_usd for a in self.attempts)

    def accepted(self, model: str, outcome: str, escalated: bool) -> None:
        """The walk accepted ``model``'s answer (``outcome``: ok | best_answer)."""
        self.model, self.outcome, self.escalated = model, outcome, escalated

    def failed(self, error: BaseException | str) -> None:
        """The request ended without an answer."""
        self.outcome = "error"
        self.error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"

    def refused(self, error: BaseException) -> None:
        """The request was refused (a budget cap, a bad request): no answer, by decision."""
        self.outcome = "refused"
        self.error = f"{type(error).__name__}: {error}"

    def attempts_summary(self) -> str:
        return "; ".join(f"{a.model}: {a.status} ({a.error or a.reason})" for a in self.attempts)

    def to_dict(self, *, with_text: bool = False) -> dict[str, Any]:
        return {"v": 1, "request_id": self.request_id, "user": self.user, "policy": self.policy,
                "score": self.score, "modality": self.modality, "model": self.model,
                "escalated": self.escalated, "cost_usd": self.cost_usd,
                "unrecorded_cost_usd": self.unrecorded_cost_usd, "latency_s": self.latency_s,
                "outcome": self.outcome, "error": self.error, "plan_reason": self.plan_reason,
                "overrun_usd": self.overrun_usd,
                "attempts": [a.to_dict(with_text=with_text) for a in self.attempts],
                "request_digest": self.request_digest, "temperature": self.temperature, "cache_hit": self.cache_hit,
                **{k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) not in (None, False, 0.0)}}


_OPTIONAL = ("session_id", "pinned", "cache", "cache_saved_usd", "cache_source", "cache_embedding_usd")


class TraceSink:
    """Appends one JSON line per request. ``keep_text`` adds prompt and answer; ``secrets`` are scrubbed
    from every line before it is written. Lines are written whole under a lock (O_APPEND)."""

    def __init__(self, path: str | os.PathLike[str], *, keep_text: bool = False, secrets: Sequence[str] = ()) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.keep_text = keep_text
        self._secrets = tuple(secrets)
        self._lock = threading.Lock()

    def write(self, trace: RouteTrace, *, ts: float, prompt: str | None = None, answer: str | None = None) -> None:
        doc = trace.to_dict(with_text=self.keep_text)
        doc["ts"] = ts
        if self.keep_text:
            doc["prompt"], doc["answer"] = prompt, answer
        self._append(doc)

    def write_record(self, doc: dict[str, Any], *, text_fields: Sequence[str] = ()) -> None:
        """A line of another kind beside the requests' (``doc["kind"]``: shadow, feedback), linked by
        ``request_id``; its ``text_fields`` are kept only by a sink that keeps text."""
        if not self.keep_text:
            doc = {k: v for k, v in doc.items() if k not in text_fields}
        self._append({"v": 1, **doc})

    def _append(self, doc: dict[str, Any]) -> None:
        line = redact(json.dumps(doc, ensure_ascii=True, default=str), self._secrets) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)


def read_traces(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The request lines of a trace file (lines of another ``kind`` — shadow, feedback — left out)."""
    return [doc for doc in read_trace_records(path) if "kind" not in doc]


def read_trace_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line of a trace file: requests, and shadow / feedback lines (``kind``)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
