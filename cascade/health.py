"""Per-model circuit breakers: N consecutive failures open a model for a cooldown, then one half-open
probe is let through; its success closes the circuit, its failure opens it again."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from policies.engine import Health
from policies.schema import CircuitConfig


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


class HealthBoard:
    """Process-local breaker states for every model alias (thread- and task-safe)."""

    def __init__(self, config: CircuitConfig = CircuitConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

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
            return True

    def success(self, model: str) -> None:
        with self._lock:
            self._states[model] = _State()

    def failure(self, model: str) -> None:
        now = self._clock()
        with self._lock:
            s = self._states.setdefault(model, _State())
            s.failures += 1
            if s.probing or s.failures >= self.config.failures:
                s.open_until = now + self.config.cooldown_s
                s.probing = False

    def release_probe(self, model: str) -> None:
        """A probe ended without a verdict (cancelled): let another one through."""
        with self._lock:
            s = self._states.get(model)
            if s is not None:
                s.probing = False

    def state(self, model: str) -> str:
        now = self._clock()
        with self._lock:
            s = self._states.get(model)
            if s is None or not s.open_until:
                return "closed"
            return "open" if s.open_until > now else "half_open"
