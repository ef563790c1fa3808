"""What a Router remembers between requests: the response cache and session pins.

The Router asks :meth:`Recall.before` first (a cache hit is answered here: $0, no provider, nothing
reserved for an answer, its trace marked ``cache_hit``; a semantic lookup's embedding call is reserved
and settled against the request's caps, :mod:`cascade.cache.paid_embedding`), plans with the session's
pin (:class:`Prelude.pin`), and tells :meth:`Recall.after` how the request ended (the answering model pins the session; an answer
that passed its checks is stored).
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from policies.budget import user_of
from policies.schema import Policy

from cascade.cache.keys import request_digest
from cascade.cache.layer import Lookup, ResponseCache, entry_of
from cascade.cache.paid_embedding import DEFAULT_TIMEOUT_S, EmbeddingBill, PaidEmbedder
from cascade.sessions import SessionPins, open_pins, validate_session_id
from cascade.trace import RouteTrace


@dataclass
class Prelude:
    """A request's recall: its session and pin, and its cache lookup (None when not looked up)."""

    session_id: str | None = None
    pin: str | None = None
    lookup: Lookup | None = None
    cache: str | None = None          # hit | miss | error | uncacheable (None: no cache)
    digest: str | None = None
    temperature: Any = None
    embedding_usd: float = 0.0        # the semantic lookup's embedding call (reserved and settled like any call)
    request_id: str = ""              # the request's id, known before planning (its embedding call is billed to it)

    def __post_init__(self) -> None:
        self.request_id = self.request_id or uuid.uuid4().hex

    def annotate(self, trace: RouteTrace, first_model: str | None = None) -> None:
        trace.session_id, trace.cache, trace.request_digest = self.session_id, self.cache, self.digest
        trace.temperature, trace.cache_embedding_usd = self.temperature, self.embedding_usd
        trace.pinned = self.pin is not None and first_model == self.pin


class Recall:
    def __init__(self, cache: ResponseCache | None, pins: SessionPins | None, caps: tuple = ()) -> None:
        self.cache, self.pins, self.caps = cache, pins, caps

    @classmethod
    def for_policy(cls, policy: Policy, transports: Mapping[str, Any], credentials: Any, *, gate: Any,
                   caps: tuple = ()) -> "Recall":
        """``gate`` and ``caps``: the Router's, against which a semantic lookup's embedding call is reserved."""
        cache = None
        if policy.cache is not None:
            from cascade.cache.stores import open_cache_store
            store = open_cache_store(policy.cache.store, max_entries=policy.cache.max_entries)
            cache = ResponseCache(policy, store, _embedder(policy, transports, credentials, gate))
        return cls(cache, open_pins(policy.sessions), tuple(caps))

    async def before(self, router: Any, messages: Sequence[Any], user: str | None, params: Mapping[str, Any],
                     session_id: Any) -> tuple[Prelude, Any]:
        """The request's prelude, and the cached reply when there is one (else None)."""
        session_id = validate_session_id(session_id)
        t = params.get("temperature")
        traced = router.sink is not None           # the digest is for the trace line (replay's cache report)
        prelude = Prelude(session_id, digest=request_digest(messages, params) if traced else None,
                          request_id=router.services.request_ids(),
                          temperature=t if isinstance(t, (int, float)) and not isinstance(t, bool) else None)
        if session_id is not None and self.pins is not None:
            prelude.pin = await self.pins.pinned(session_id)
        if self.cache is None:
            return prelude, None
        from cascade.planning import check_prompt_size, validate_user
        validate_user(user)
        payer, user = user, user_of(user)   # a Principal pays; the cache's scope and the trace keep its user name
        check_prompt_size(messages, router.services.max_prompt_chars)
        keys = self.cache.keys_for(messages, params, user)
        if keys is None:
            prelude.cache = "uncacheable"
            return prelude, None
        bill = EmbeddingBill(prelude.request_id, payer, self.caps)
        prelude.lookup = await self.cache.lookup(keys, bill)
        prelude.cache, prelude.embedding_usd = prelude.lookup.result, bill.spent_usd
        if prelude.lookup.result != "hit":
            return prelude, None
        return prelude, await self._reply(router, prelude, messages, user, params)

    async def _reply(self, router: Any, prelude: Prelude, messages: Sequence[Any], user: str | None,
                     params: Mapping[str, Any]) -> Any:
        from cascade.cache.replies import chunks_of, completion_of
        from cascade.planning import build_request
        entry = prelude.lookup.entry if prelude.lookup is not None else None
        assert entry is not None
        if not router._started:          # the spool of an earlier run is applied even if every request hits
            await router.astart()
        request = build_request(messages, params, user, router.policy)
        trace = RouteTrace(prelude.request_id, router.policy.name, float(router.classifier.score_one(request.text)),
                           request.modality, user, plan_reason="cache hit: the answer stored for this request")
        prelude.annotate(trace, entry.get("model"))
        trace.accepted(entry.get("model"), "ok", False)
        trace.cache_hit, trace.cache_saved_usd = True, float(entry.get("cost_usd") or 0.0)
        trace.cache_source = entry.get("request_id")
        created = int(router._wall())
        span = router.services.telemetry.start_request(trace, planned_model=entry.get("model"))
        router.record(trace, span, messages, request.text, entry["message"].get("content"))
        if prelude.session_id is not None and self.pins is not None and entry.get("model"):
            await self.pins.pin(prelude.session_id, entry["model"])
        if params.get("stream"):
            from cascade.streaming import CascadeStream, replay_chunks
            return CascadeStream(replay_chunks(chunks_of(entry, trace.request_id, created)), trace)
        response = completion_of(entry, trace.request_id, created)
        response.cascade = trace
        return response

    async def after(self, prelude: Prelude | None, trace: RouteTrace, chosen: Any) -> None:
        """The request ended answered by ``trace.model`` (``chosen``: its checked candidate; None for a
        direct stream, whose answer ran no checks and is never stored)."""
        if prelude is None or trace.model is None:
            return
        try:
            if prelude.session_id is not None and self.pins is not None:
                await self.pins.pin(prelude.session_id, trace.model)
            if self.cache is not None and prelude.lookup is not None and prelude.lookup.result != "error":
                entry = entry_of(trace, chosen)
                if entry is not None:
                    await self.cache.remember(prelude.lookup, entry)
        except Exception as exc:  # noqa: BLE001 - the answer was paid for: it reaches the caller regardless
            logging.getLogger("cascade.cache").error("not remembered (%s): %s: %s", trace.request_id,
                                                     type(exc).__name__, exc)

    def close(self) -> None:
        for part in (self.cache, self.pins):
            if part is not None:
                part.close()


def _embedder(policy: Policy, transports: Mapping[str, Any], credentials: Any, gate: Any) -> Any:
    """The semantic cache's embedding call through the embedding model's transport, paid for through
    ``gate`` (None: no semantic matching, or a transport that cannot embed)."""
    if policy.cache is None or policy.cache.semantic is None:
        return None
    alias = policy.cache.semantic.embedding_model
    transport, spec = transports.get(alias), policy.catalog[alias]
    if transport is None or not hasattr(transport, "aembed"):
        return None

    async def embed(text: str, timeout_s: float) -> tuple[list[float], int]:
        from cascade.calls import CallSpec
        api_base, api_key = credentials(alias)
        call = CallSpec(spec.litellm_model, [], api_base, api_key, timeout_s, {}, alias)
        return await transport.aembed(call, text)
    return PaidEmbedder(gate, alias, spec.price, embed, spec.timeout_s or DEFAULT_TIMEOUT_S)
