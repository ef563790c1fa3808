"""Per-model circuit breakers: N consecutive failures open a model for a cooldown, then one half-open
probe is let through; its success closes the circuit, its failure opens it again for longer.

    closed ──(failures in a row)──► open ──(cooldown over, a call asks)──► half_open (one probe)
       ▲                                ▲                                      │
       └────────────(probe succeeds)────┼──────────────────────────────────────┤
                                        └───────(probe fails: cooldown × multiplier)┘

The first cooldown is short (``circuit_breaker.cooldown_s``, 2 s by default) so that a brief upstream
blip costs seconds, not half a minute; every failed probe multiplies it (``cooldown_multiplier``) up
to ``max_cooldown_s``, so a provider that stays down is probed rarely. A success resets it.

Listeners (:meth:`HealthBoard.subscribe`) are told every transition ``(model, from, to)``: the
server counts them in ``/metrics``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from policies.engine import Health
from policies.schema import CircuitConfig

log = logging.getLogger("cascade.health")
Listener = Callable[[str, str, str], None]
STATES = ("closed", "half_open", "open")        # by severity: the value of cascade_circuit_state


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False
    openings: int = 0            # openings in a row without a success (sets the cooldown)


class HealthBoard:
    """Process-local breaker states for every model alias (thread- and task-safe)."""

    def __init__(self, config: CircuitConfig = CircuitConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(model, from_state, to_state)`` on every transition (outside the lock)."""
        self._listeners.append(listener)

    def snapshot(self) -> Health:
        """Models to leave out of the next plan: open circuits, and half-open ones already probing."""
        now = self._clock()
        with self._lock:
            down = {m for m, s in self._states.items() if s.open_until > now or (s.probing and s.open_until)}
        return Health(down=frozenset(down))

    def acquire(self, model: str) -> bool:
        """May a call go to ``model`` now? A half-open circuit admits exactly one probe."""
        now = self._clock()
        with self._lock:
            s = self._states.get(model)
            if s is None or not s.open_until:
                return True
            if s.open_until > now or s.probing:
                return False
            s.probing = True
        self._tell(model, "open", "half_open")
        return True

    def success(self, model: str) -> None:
        with self._lock:
            s = self._states.get(model)
            was = self._state_of(s, self._clock())
            self._states[model] = _State()
        if was != "closed":
            self._tell(model, was, "closed")

    def failure(self, model: str) -> None:
        now = self._clock()
        with self._lock:
            s = self._states.setdefault(model, _State())
            was = self._state_of(s, now)
            s.failures += 1
            if not (s.probing or (s.failures >= self.config.failures and s.open_until <= now)):
                return
            s.openings += 1
            s.open_until = now + self.config.cooldown(s.openings)
            s.probing = False
            cooldown = s.open_until - now
        log.warning("circuit of %s opened for %.1f s (%s)", model, cooldown,
                    "its half-open probe failed" if was == "half_open" else f"{s.failures} failures in a row")
        self._tell(model, "half_open" if was == "half_open" else "closed", "open")

    def release_probe(self, model: str) -> None:
        """A probe ended without a verdict (cancelled): let another one through."""
        with self._lock:
            s = self._states.get(model)
            if s is not None:
                s.probing = False

    def state(self, model: str) -> str:
        with self._lock:
            return self._state_of(self._states.get(model), self._clock())

    def retry_in(self, model: str) -> float | None:
        """Seconds until ``model`` may be called again: 0 when it may now, None when it is closed."""
        now = self._clock()
        with self._lock:
            s = self._states.get(model)
            if s is None or not s.open_until:
                return None
            return max(0.0, s.open_until - now)

    @staticmethod
    def _state_of(s: _State | None, now: float) -> str:
        if s is None or not s.open_until:
            return "closed"
        return "open" if s.open_until > now else "half_open"

    def _tell(self, model: str, was: str, now: str) -> None:
        for listener in self._listeners:
            try:
                listener(model, was, now)
            except Exception:  # noqa: BLE001 - a listener must not break the breaker
                log.exception("circuit listener failed")
