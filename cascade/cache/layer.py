"""The response cache a Router consults: exact lookups, optional semantic ones, and what is stored.

A store that fails (down, full, corrupt) never fails a request: the lookup or the write is skipped
(``counts["errors"]``), the first failure is logged (once per cache), the store is not tried again for
:data:`RETRY_STORE_S` (a store that times out costs at most one timeout per interval), and the request
is answered by the providers as if there were no cache. Only answers accepted with every check passed and a
``finish_reason`` of ``stop`` or ``tool_calls`` are stored (:func:`entry_of`). A semantic lookup's
embedding call is paid for by the request (:mod:`cascade.cache.paid_embedding`): its ``bill`` is passed
through; a cap that refuses it leaves the lookup exact (``counts["embedding_refused"]``). An answer is
stored with the vector its lookup computed (no second embedding call after the trace is written).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from policies.cache import cacheable_temperature
from policies.errors import BudgetExceeded, BudgetStoreUnavailable
from policies.schema import Policy

from cascade.cache.embeddings import cosine
from cascade.cache.keys import CacheKeys, cache_keys, policy_digest
from cascade.cache.stores import CacheStore

log = logging.getLogger("cascade.cache")
Embed = Callable[[str, Any], Awaitable[tuple[list[float], int]]]     # (text, the request's bill)
STORED_FINISH = ("stop", "tool_calls")
RETRY_STORE_S = 5.0           # a store that failed is bypassed without being tried for this long
_MESSAGE_FIELDS = ("role", "content", "tool_calls", "function_call")


@dataclass
class Lookup:
    """One request's lookup: ``result`` hit | miss | error; ``entry``: the stored answer of a hit."""

    keys: CacheKeys
    result: str
    entry: dict[str, Any] | None = None
    vector: list[float] | None = None
    similarity: float | None = None
    embedding_tokens: int = 0          # what the semantic lookup's embedding call counted


class ResponseCache:
    def __init__(self, policy: Policy, store: CacheStore, embed: Embed | None = None) -> None:
        assert policy.cache is not None
        self.config, self.store, self._embed = policy.cache, store, embed
        self._name, self._sha = policy.name, policy_digest(policy)
        self.counts: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._clock, self._down_until = time.monotonic, 0.0

    def keys_for(self, messages: Sequence[Any], params: Mapping[str, Any], user: str | None) -> CacheKeys | None:
        """The request's keys, or None when its sampling makes it uncacheable."""
        if not cacheable_temperature(params, self.config.temperature_any):
            return None
        try:
            return cache_keys(self._name, self._sha, self.config.scope, user, messages, params)
        except (TypeError, ValueError):       # not JSON-like: the planner refuses it with its typed error
            return None

    async def lookup(self, keys: CacheKeys, bill: Any = None) -> Lookup:
        if self._clock() < self._down_until:          # failed a moment ago: not tried again yet
            self.counts["errors"] += 1
            return self._counted(Lookup(keys, "error"))
        try:
            raw = await self._call(self.store.get, keys.exact)
            if raw is not None:
                return self._counted(Lookup(keys, "hit", json.loads(raw), similarity=1.0))
            if self.config.semantic is None or keys.bucket is None or self._embed is None:
                return self._counted(Lookup(keys, "miss"))
            got = await self._vector(keys.query or "", bill)
            if got is None:
                return self._counted(Lookup(keys, "miss"))
            found = await self._nearest(keys, got[0])
            found.embedding_tokens = got[1]
            return self._counted(found)
        except Exception as exc:  # noqa: BLE001 - a broken store is bypassed, never fatal
            self._broken("lookup", exc)
            return self._counted(Lookup(keys, "error"))

    async def _nearest(self, keys: CacheKeys, vector: list[float]) -> Lookup:
        assert self.config.semantic is not None and keys.bucket is not None
        pairs = await self._call(self.store.vectors, keys.bucket)
        best = max(((cosine(vector, v), k) for k, v in pairs), default=None)
        if best is not None and best[0] >= self.config.semantic.threshold:
            raw = await self._call(self.store.get, best[1])
            if raw is not None:
                return Lookup(keys, "hit", json.loads(raw), vector, similarity=best[0])
        return Lookup(keys, "miss", vector=vector)

    async def remember(self, lookup: Lookup, entry: dict[str, Any]) -> None:
        """Store ``entry`` under the lookup's key (and its vector in its semantic bucket)."""
        keys, ttl = lookup.keys, self.config.ttl_s
        if self._clock() < self._down_until:
            return
        try:
            await self._call(self.store.put, keys.exact, json.dumps(entry, ensure_ascii=False), ttl)
            self.counts["stored"] += 1
            if self.config.semantic is None or keys.bucket is None or self._embed is None:
                return
            if lookup.vector is not None:
                await self._call(self.store.add_vector, keys.bucket, keys.exact, lookup.vector, ttl)
        except Exception as exc:  # noqa: BLE001
            self._broken("store", exc)

    async def _vector(self, text: str, bill: Any) -> tuple[list[float], int] | None:
        assert self._embed is not None
        try:
            return await self._embed(text, bill)
        except (BudgetExceeded, BudgetStoreUnavailable):     # not budgeted: exact matching for this request
            self.counts["embedding_refused"] += 1
            return None
        except Exception as exc:  # noqa: BLE001 - no vector: exact matching only for this request
            self.counts["embedding_errors"] += 1
            if "embed" not in self._logged:
                self._logged.add("embed")
                log.warning("semantic cache: embedding call failed (%s); exact matching only until it "
                            "answers again", type(exc).__name__)
            return None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args) if getattr(self.store, "blocking", False) else fn(*args)

    def _counted(self, lookup: Lookup) -> Lookup:
        self.counts[lookup.result] += 1
        return lookup

    def _broken(self, what: str, exc: BaseException) -> None:
        self.counts["errors"] += 1
        self._down_until = self._clock() + RETRY_STORE_S
        if what not in self._logged:
            self._logged.add(what)
            log.error("response cache %s failed, bypassed (logged once): %s: %s", what, type(exc).__name__, exc)

    def close(self) -> None:
        try:
            self.store.close()
        except Exception:  # noqa: BLE001 - closing must not fail
            pass


def entry_of(trace: Any, chosen: Any) -> dict[str, Any] | None:
    """What is stored for an accepted answer, or None when it must not be: not every check passed,
    a finish_reason other than stop / tool_calls (truncated, filtered), or a refusal."""
    if chosen is None or trace.outcome != "ok" or not chosen.passed:
        return None
    result = chosen.result
    if result.finish_reason not in STORED_FINISH:
        return None
    message = _message_of(result)
    if message is None:
        return None
    return {"v": 1, "model": trace.model, "litellm_model": result.litellm_model, "message": message,
            "finish_reason": result.finish_reason, "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens, "cost_usd": trace.cost_usd,
            "request_id": trace.request_id}


def _message_of(result: Any) -> dict[str, Any] | None:
    response = getattr(result, "response", None)
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    if message is None:
        return {"role": "assistant", "content": result.content}
    dumped = message.model_dump(exclude_none=True) if hasattr(message, "model_dump") else dict(message)
    if dumped.get("refusal"):
        return None
    out = {k: dumped[k] for k in _MESSAGE_FIELDS if dumped.get(k) is not None}
    out["role"] = "assistant"
    out.setdefault("content", result.content if not out.get("tool_calls") else None)
    return out
