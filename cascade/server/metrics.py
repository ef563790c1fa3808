"""Prometheus metrics of one ``cascade serve`` app, in its own ``CollectorRegistry``.

    cascade_requests_total{model, outcome}          requests answered or refused; ``model`` is the
                                                    catalog alias that answered ("none" if none did);
                                                    outcome: ok | best_answer | budget_exceeded |
                                                    invalid_request | unauthorized | not_found |
                                                    too_large | provider_error | exhausted |
                                                    store_unavailable | client_closed | error
    cascade_escalations_total                       answers that needed more than one model
    cascade_escalation_reasons_total{reason}        why they did: what the first model's answer failed
                                                    (``check:<name>``, ``error:<type>``, ``skipped:<why>``)
    cascade_spend_usd_total                         USD committed by this process's requests
    cascade_overrun_usd_total                       USD committed beyond the reservations (providers that
                                                    reported more tokens than were reserved for)
    cascade_budget_refusals_total{scope, window}    BudgetExceeded refusals
    cascade_request_duration_seconds{stream}        latency histogram (to the last byte for streams)
    cascade_requests_in_flight                      chat completions being served now
    cascade_circuit_state{model}                    each catalog model's circuit breaker: 0 closed,
                                                    1 half-open (one probe allowed), 2 open
    cascade_circuit_transitions_total{model, to}    circuit transitions of this process, by new state
                                                    (open | half_open | closed)
    cascade_cache_lookups_total{result}             response-cache lookups (policy ``cache:``): hit | miss |
                                                    error (store bypassed) | uncacheable (sampled request)
    cascade_cache_saved_usd_total                   what the answers served from the cache cost when made

Under ``cascade serve --workers N`` the workers write their values to PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode, set up by the parent) and every worker's /metrics reports
the sum over all of them (the circuit state: the worst over the live workers).
"""
from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cascade.health import STATES

__all__ = ["ServerMetrics", "CONTENT_TYPE_LATEST"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("cascade_requests", "Chat completion requests by answering model and outcome.",
                                ("model", "outcome"), registry=r)
        self.escalations = Counter("cascade_escalations", "Answers that needed more than one model.", registry=r)
        self.escalation_reasons = Counter("cascade_escalation_reasons", "Escalated answers, by why the first "
                                          "model's answer was not taken.", ("reason",), registry=r)
        self.spend = Counter("cascade_spend_usd", "USD committed by the requests of this process.", registry=r)
        self.overrun = Counter("cascade_overrun_usd", "USD committed beyond what was reserved (provider reported "
                               "more tokens than reserved for).", registry=r)
        self.refusals = Counter("cascade_budget_refusals", "Requests refused by a budget cap.",
                                ("scope", "window"), registry=r)
        self.latency = Histogram("cascade_request_duration_seconds", "Chat completion latency (seconds).",
                                 ("stream",), buckets=_BUCKETS, registry=r)
        self.in_flight = Gauge("cascade_requests_in_flight", "Chat completions being served now.", registry=r,
                               multiprocess_mode="livesum")
        self.circuit_state = Gauge("cascade_circuit_state", "Circuit breaker of each catalog model: 0 closed, "
                                   "1 half-open, 2 open.", ("model",), registry=r, multiprocess_mode="livemax")
        self.circuit_transitions = Counter("cascade_circuit_transitions", "Circuit breaker transitions, by model "
                                           "and the state entered.", ("model", "to"), registry=r)
        self.cache_lookups = Counter("cascade_cache_lookups", "Response-cache lookups by result.", ("result",),
                                     registry=r)
        self.cache_saved = Counter("cascade_cache_saved_usd", "USD the answers served from the response cache "
                                   "cost when they were made.", registry=r)
        self._latency = {True: self.latency.labels("true"), False: self.latency.labels("false")}
        self._by_outcome: dict[tuple[str, str], Any] = {}
        self._board: Any = None
        self._models: tuple[str, ...] = ()

    def watch(self, board: Any, models: Any) -> None:
        """Report the circuit breakers of ``board`` (a HealthBoard) for ``models``: transitions as they
        happen, every state at each scrape."""
        self._board, self._models = board, tuple(models)
        board.subscribe(self._transition)
        self._refresh_circuits()

    def _transition(self, model: str, was: str, now: str) -> None:
        self.circuit_transitions.labels(model, now).inc()
        self.circuit_state.labels(model).set(STATES.index(now))

    def _refresh_circuits(self) -> None:
        if self._board is not None:
            for model in self._models:
                self.circuit_state.labels(model).set(STATES.index(self._board.state(model)))

    def record(self, *, outcome: str, trace: Any = None, seconds: float, stream: bool) -> None:
        """Count one finished request (``trace``: its RouteTrace, when the Router made one)."""
        model = "none"
        if trace is not None:
            model = trace.model or "none"
            if trace.cost_usd:
                self.spend.inc(trace.cost_usd)
            if trace.overrun_usd:
                self.overrun.inc(trace.overrun_usd)
            if trace.escalated:
                self.escalations.inc()
                self.escalation_reasons.labels(escalation_reason(trace)).inc()
            if getattr(trace, "cache", None):
                self.cache_lookups.labels(trace.cache).inc()
                if trace.cache_saved_usd:
                    self.cache_saved.inc(trace.cache_saved_usd)
        key = (model, outcome)
        child = self._by_outcome.get(key)
        if child is None:
            child = self._by_outcome[key] = self.requests.labels(model, outcome)
        child.inc()
        self._latency[stream].observe(seconds)

    def refused(self, scope: str | None, window: str | None) -> None:
        self.refusals.labels(scope or "unknown", window or "unknown").inc()

    def exposition(self) -> bytes:
        return generate_latest(self._current())

    def collect(self) -> list[Any]:
        """The metric families ``/metrics`` exposes (the dashboard reads these, not a copy)."""
        return list(self._current().collect())

    def _current(self) -> CollectorRegistry:
        self._refresh_circuits()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):      # several workers: the sum over all of them
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return registry
        return self.registry


def escalation_reason(trace: Any) -> str:
    """Why an escalated request left its first model: its first attempt that was not taken, as
    ``check:<first failed check>``, ``error:<exception type>`` or ``skipped:<why>`` (``other`` if none)."""
    for a in trace.attempts:
        if a.status == "check_failed":
            failed = next((c.name for c in a.checks if c.passed is False), "check")
            return f"check:{failed}"
        if a.status == "error":
            return "error:" + (a.error or "error").split(":", 1)[0]
        if a.status == "skipped":
            return "skipped:" + (a.reason.split(":", 1)[0] or "skipped").split()[0]
    return "other"
