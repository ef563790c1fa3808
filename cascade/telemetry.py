"""Request telemetry: the Router's one hook for tracing systems, a no-op unless switched on.

    telemetry: {opentelemetry: true}          # policy: OpenTelemetry GenAI spans and metrics
    telemetry: {opentelemetry: true, capture_content: true}    # ... with prompt and answer text

The Router calls :meth:`Telemetry.start_request` when a request's plan is made and
:meth:`Telemetry.end_request` once its trace is complete (:meth:`Telemetry.refused` for a request refused
before it had a plan); each attempt's record is reported as it is
added to the trace (``RouteTrace.on_attempt``), so an attempt is observed at its end with its measured
latency. Off (the default), the hook is :data:`NO_TELEMETRY` and nothing is imported; on, it is
:class:`cascade.otel.OpenTelemetry` (the ``[otel]`` extra), built at Router construction, where a missing
``opentelemetry-sdk`` is a :class:`~cascade.extras.MissingExtra` error. A server enters
:meth:`Telemetry.incoming` with each request's headers, so the request's span joins the caller's trace
(a W3C ``traceparent`` header) instead of starting a new one.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Mapping, Protocol, Sequence

__all__ = ["NO_TELEMETRY", "NoTelemetry", "Telemetry", "open_telemetry"]


class Telemetry(Protocol):
    def start_request(self, trace: Any, *, planned_model: str | None) -> Any:
        """A handle for one request (its span); ``trace`` is the request's RouteTrace."""

    def end_request(self, handle: Any, trace: Any, *, messages: Any = None, answer: str | None = None) -> None:
        """The request ended: ``trace`` is complete (outcome, cost, attempts)."""

    def refused(self, policy: str, exc: BaseException) -> None:
        """A request refused before any plan (a budget cap, every model's circuit open)."""

    def incoming(self, headers: Mapping[str, str]) -> AbstractContextManager[Any]:
        """While entered, spans started are children of the trace context the headers carry (if any)."""

    def shutdown(self) -> None:
        """Flush what is buffered and close what this object opened."""


class NoTelemetry:
    """Telemetry off: every call does nothing."""

    enabled = False

    def start_request(self, trace: Any, *, planned_model: str | None) -> None:
        return None

    def end_request(self, handle: Any, trace: Any, *, messages: Any = None, answer: str | None = None) -> None:
        return None

    def refused(self, policy: str, exc: BaseException) -> None:
        return None

    def incoming(self, headers: Mapping[str, str]) -> AbstractContextManager[Any]:
        return nullcontext()

    def shutdown(self) -> None:
        return None


NO_TELEMETRY = NoTelemetry()


def open_telemetry(policy: Any, *, opentelemetry: bool | None = None, secrets: Sequence[str] = ()) -> Any:
    """The telemetry ``policy`` asks for (``telemetry.opentelemetry``, or ``opentelemetry`` when given:
    an operator's override such as ``cascade serve --otel``). ``secrets`` never reach a span."""
    config = policy.telemetry
    enabled = config.opentelemetry if opentelemetry is None else opentelemetry
    if not enabled:
        return NO_TELEMETRY
    from cascade.extras import require
    require("opentelemetry.sdk.trace", "telemetry: {opentelemetry: true}")
    from cascade.otel import OpenTelemetry
    return OpenTelemetry.from_environment(policy.catalog, capture_content=config.capture_content, secrets=secrets)
