"""Circuit-breaker state shared through Redis: when one replica opens a model's circuit, the others
skip that model too until the cooldown ends.

Transitions reported to listeners (:meth:`subscribe`) are this replica's own; :meth:`state` includes
circuits opened elsewhere.

Each replica keeps its own consecutive-failure counts (a :class:`HealthBoard`); the moment one opens a
circuit it writes ``open_until`` (epoch seconds) into the hash ``<prefix>circuit``; a success deletes it.
Replicas read the hash at most every ``refresh_s`` seconds. A Redis outage degrades to the local board.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from policies.engine import Health

from cascade.health import HealthBoard

log = logging.getLogger("cascade.health")
DEGRADED_REFRESH_S = 10.0


class SharedHealthBoard:
    def __init__(self, local: HealthBoard, url: str, *, prefix: str = "cascade:", refresh_s: float = 0.5,
                 wall_clock: Callable[[], float] = time.time, client: Any = None) -> None:
        from cascade.extras import require     # lazy: only deployments that share health pay for the import
        redis = require("redis", "circuit-breaker state shared through Redis")
        self.local = local
        self.config = local.config
        self._key = f"{prefix}circuit"
        # Reads run on the caller's thread (often an event loop): keep them short, and back off while
        # Redis is unreachable so an outage costs one short timeout per ``DEGRADED_REFRESH_S``.
        self._client = client or redis.Redis.from_url(url, socket_timeout=0.05, socket_connect_timeout=0.05)
        self._errors = (redis.RedisError, OSError)
        self._wall = wall_clock
        self._refresh_s = refresh_s
        self._shared: dict[str, float] = {}
        self._read_at = float("-inf")
        self._degraded = False

    def _open_elsewhere(self) -> dict[str, float]:
        now = self._wall()
        if now - self._read_at >= (DEGRADED_REFRESH_S if self._degraded else self._refresh_s):
            self._read_at = now
            try:
                raw = self._client.hgetall(self._key)
            except self._errors as exc:
                if not self._degraded:
                    log.warning("shared circuit state unavailable, using this replica's only: %s",
                                type(exc).__name__)
                self._degraded = True
                return {m: t for m, t in self._shared.items() if t > now}
            self._degraded = False
            self._shared = {k.decode(): float(v) for k, v in raw.items()}
        return {m: t for m, t in self._shared.items() if t > now}

    def snapshot(self) -> Health:
        return Health(down=self.local.snapshot().down | frozenset(self._open_elsewhere()))

    def acquire(self, model: str) -> bool:
        if model in self._open_elsewhere():
            return False
        return self.local.acquire(model)

    def success(self, model: str) -> None:
        self.local.success(model)
        if model in self._shared:
            self._shared.pop(model, None)
            self._write(lambda: self._client.hdel(self._key, model))

    def failure(self, model: str) -> None:
        was_open = self.local.state(model) == "open"
        self.local.failure(model)
        if not was_open and self.local.state(model) == "open":
            until = self._wall() + (self.local.retry_in(model) or 0.0)    # this opening's cooldown
            self._shared[model] = until
            self._write(lambda: self._client.hset(self._key, model, repr(until)))

    def release_probe(self, model: str) -> None:
        self.local.release_probe(model)

    def state(self, model: str) -> str:
        if model in self._open_elsewhere():
            return "open"
        return self.local.state(model)

    def retry_in(self, model: str) -> float | None:
        elsewhere = self._open_elsewhere().get(model)
        local = self.local.retry_in(model)
        if elsewhere is None:
            return local
        return max(elsewhere - self._wall(), local or 0.0)

    def subscribe(self, listener: Callable[[str, str, str], None]) -> None:
        self.local.subscribe(listener)

    def _write(self, op: Callable[[], Any]) -> None:
        try:
            op()
        except self._errors as exc:
            log.warning("could not share circuit state: %s", type(exc).__name__)
