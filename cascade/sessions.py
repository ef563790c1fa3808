"""Session pinning: a session's later turns start at the model that answered its last turn.

    router.complete(messages, session_id="s-1")       # or the x-session-id header of cascade serve

After each answered turn the session is pinned to the catalog alias that answered, for the policy's
``sessions.pin_ttl_s`` (refreshed by every turn). The pin is a planning input: the engine is told
"start at or above this model" (:func:`policies.engine.decide`'s ``start_at``), so a session that
escalated to GPT-4o stays on GPT-4o (its provider prompt cache warm, its tool-call ids consistent)
until it has been idle for the TTL. A pin never plans below what the classifier's score asks, and a
pinned model that is not on the request's ladder (another modality) is ignored. A store that fails
is bypassed (no pin), logged once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from policies.cache import SessionConfig
from policies.errors import InvalidRequestError

log = logging.getLogger("cascade.sessions")
MAX_SESSION_ID = 256


def validate_session_id(session_id: Any) -> str | None:
    """A session id is a non-empty string of at most 256 printable characters (or None)."""
    if session_id is None:
        return None
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_SESSION_ID \
            or not session_id.isprintable():
        raise InvalidRequestError(f"session_id must be a non-empty printable string of at most {MAX_SESSION_ID} "
                                  f"characters, got {type(session_id).__name__} of length "
                                  f"{len(session_id) if isinstance(session_id, str) else '-'}")
    return session_id


class SessionPins:
    """session id -> the alias that answered its last turn, with expiry, in a cache store."""

    def __init__(self, config: SessionConfig, store: Any) -> None:
        self.config, self.store = config, store
        self.errors = 0
        self._logged = False

    async def pinned(self, session_id: str) -> str | None:
        try:
            return await self._call(self.store.get, "pin:" + session_id)
        except Exception as exc:  # noqa: BLE001 - no pin rather than no answer
            self._broken(exc)
            return None

    async def pin(self, session_id: str, alias: str) -> None:
        try:
            await self._call(self.store.put, "pin:" + session_id, alias, self.config.pin_ttl_s)
        except Exception as exc:  # noqa: BLE001
            self._broken(exc)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args) if getattr(self.store, "blocking", False) else fn(*args)

    def _broken(self, exc: BaseException) -> None:
        self.errors += 1
        if not self._logged:
            self._logged = True
            log.error("session pin store failed, bypassed (logged once): %s: %s", type(exc).__name__, exc)

    def close(self) -> None:
        try:
            self.store.close()
        except Exception:  # noqa: BLE001
            pass


def open_pins(config: SessionConfig) -> SessionPins | None:
    if not config.enabled:
        return None
    from cascade.cache.stores import open_cache_store
    return SessionPins(config, open_cache_store(config.store, max_entries=100_000, prefix="cascade:session:"))


class ReplayPins:
    """Session pins in replay (``cascade replay --traces``): each session's later turns start at the
    model the *replayed* policy answered its last turn with, while that turn is at most ``pin_ttl_s``
    older (by the trace's ``ts``): what the live Router would have done under that policy."""

    def __init__(self, config: SessionConfig, sessions: Any, ts: Any, aliases: Any) -> None:
        on = config.enabled and sessions is not None and any(s is not None for s in sessions)
        self._sessions = list(sessions) if on else None
        self._ts = [float(t) for t in ts] if on and ts is not None else None
        self._ttl, self._aliases = config.pin_ttl_s, tuple(aliases)
        self._last: dict[str, tuple[str, float]] = {}
        self._floor: dict[int, int] = {}

    def start(self, i: int) -> str | None:
        session = self._sessions[i] if self._sessions is not None else None
        if session is None or session not in self._last:
            return None
        alias, at = self._last[session]
        if self._ts is not None and self._ts[i] - at > self._ttl:
            return None
        self._floor[i] = self._aliases.index(alias)
        return alias

    def floors(self, n: int) -> Any:
        """(N,) the rung each request's pin started it at or above (0: none); None without sessions."""
        if self._sessions is None:
            return None
        import numpy as np
        out = np.zeros(n, dtype=np.int64)
        for i, rung in self._floor.items():
            out[i] = rung
        return out

    def answered(self, i: int, rung: int) -> None:
        session = self._sessions[i] if self._sessions is not None else None
        if session is not None and rung >= 0:
            self._last[session] = (self._aliases[rung], self._ts[i] if self._ts is not None else 0.0)
