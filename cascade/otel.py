"""OpenTelemetry GenAI spans and metrics for each request (the ``[otel]`` extra; see :mod:`cascade.telemetry`).

One span per request, ``chat <model>`` (SpanKind CLIENT), with one child span per attempt that reached a
provider — retried calls, failed calls, answers that failed their checks, second opinions — each carrying
the GenAI semantic conventions::

    gen_ai.operation.name = "chat"           gen_ai.system = "deepseek" | "openai" | ... (the litellm prefix;
                                             also as gen_ai.provider.name, its newer name)
    gen_ai.request.model  = the provider's model id the request was planned to (an attempt: its own)
    gen_ai.response.model = the provider's model id that answered
    gen_ai.usage.input_tokens / gen_ai.usage.output_tokens       (the request: summed over its attempts)
    gen_ai.response.finish_reasons = ["stop"]

and cascade's own: ``cascade.model`` (catalog alias), ``cascade.cost_usd``, ``cascade.escalated``,
``cascade.reason``, ``cascade.outcome``, ``cascade.policy``, ``cascade.request_id``, ``cascade.status`` and
``cascade.checks.passed`` / ``cascade.checks.failed`` (check names) on attempts, ``cascade.cache_hit`` when
the policy has a response cache. Attempts the request skipped (budget, open circuit, deadline) are events on the request
span. No prompt or answer text unless ``capture_content`` (then ``gen_ai.input.messages`` /
``gen_ai.output.messages``, JSON); never an API key (every text attribute is scrubbed of the catalog's keys).

Metrics, per provider call: ``gen_ai.client.token.usage`` (histogram, ``{token}``, by ``gen_ai.token.type``
input / output) and ``gen_ai.client.operation.duration`` (histogram, seconds; ``error.type`` on failures).

Incoming trace context: a server enters :meth:`OpenTelemetry.incoming` with each request's headers; the
W3C ``traceparent`` (and ``tracestate``, baggage) they carry is extracted by OpenTelemetry's global
propagator (``OTEL_PROPAGATORS``, default ``tracecontext,baggage``), so the request span is a child of
the caller's span, in the caller's trace. Without such a header the request span is a new root.

Where they go: an application that installed its own SDK ``TracerProvider`` / ``MeterProvider`` as the
global one gets the spans there. Otherwise the standard environment variables choose exporters, as the
SDK's auto-configuration does: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (comma-separated
entry-point names: ``console``, ``otlp`` with ``opentelemetry-exporter-otlp``, ...; unset or ``none``: no
exporter), ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_METRIC_EXPORT_INTERVAL``; the providers are then the Router's own, flushed when it closes.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Iterator, Mapping, Sequence

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from cascade.provider_errors import redact
from policies.errors import ConfigError

__all__ = ["OpenTelemetry"]
log = logging.getLogger("cascade.telemetry")

SCOPE = "deepseek-cascade"
_CALLED = frozenset({"ok", "check_failed", "error", "retried", "second_opinion"})
_ANSWERED = frozenset({"ok", "check_failed", "second_opinion"})
_EXPORTER_VARS = {"traces": "OTEL_TRACES_EXPORTER", "metrics": "OTEL_METRICS_EXPORTER"}
_PACKAGES = {"otlp": "opentelemetry-exporter-otlp", "otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc",
             "otlp_proto_http": "opentelemetry-exporter-otlp-proto-http", "zipkin": "opentelemetry-exporter-zipkin",
             "prometheus": "opentelemetry-exporter-prometheus"}
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


class OpenTelemetry:
    """The :class:`cascade.telemetry.Telemetry` hook on OpenTelemetry. ``catalog``: the policy's models
    (alias → spec with ``litellm_model``)."""

    enabled = True

    def __init__(self, catalog: Mapping[str, Any], *, tracer_provider: Any, meter_provider: Any,
                 capture_content: bool = False, secrets: Sequence[str] = (), owned: Sequence[Any] = ()) -> None:
        self._models = {alias: _system_and_id(spec.litellm_model) for alias, spec in catalog.items()}
        self._tracer = tracer_provider.get_tracer(SCOPE)
        meter = meter_provider.get_meter(SCOPE)
        self._tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                              description="Number of input and output tokens used",
                                              explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS)
        self._duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                                description="GenAI operation duration",
                                                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
        self.capture_content = capture_content
        self._secrets = tuple(secrets)
        self._owned = tuple(owned)

    @classmethod
    def from_environment(cls, catalog: Mapping[str, Any], *, capture_content: bool = False,
                         secrets: Sequence[str] = ()) -> "OpenTelemetry":
        """Spans and metrics to the application's global SDK providers, else to providers of our own
        whose exporters the ``OTEL_*`` variables name (see the module docstring)."""
        owned: list[Any] = []
        tracer_provider = trace.get_tracer_provider()
        if not isinstance(tracer_provider, TracerProvider):
            tracer_provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=True)
            for exporter in _exporters("traces"):
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            owned.append(tracer_provider)
        meter_provider = metrics.get_meter_provider()
        if not isinstance(meter_provider, MeterProvider):
            readers = [PeriodicExportingMetricReader(e) for e in _exporters("metrics")]
            meter_provider = MeterProvider(resource=Resource.create(), metric_readers=readers)
            owned.append(meter_provider)
        return cls(catalog, tracer_provider=tracer_provider, meter_provider=meter_provider,
                   capture_content=capture_content, secrets=secrets, owned=owned)

    # ---- the hook -------------------------------------------------------------------------------------
    def start_request(self, trace_: Any, *, planned_model: str | None) -> Any:
        system, model_id = self._models.get(planned_model or "", (None, planned_model or "cascade"))
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model_id,
                      "cascade.policy": trace_.policy, "cascade.request_id": trace_.request_id,
                      "cascade.score": float(trace_.score), "cascade.modality": trace_.modality}
        if system is not None:
            attributes["gen_ai.system"] = attributes["gen_ai.provider.name"] = system
        span = self._tracer.start_span(f"chat {model_id}", kind=SpanKind.CLIENT, attributes=attributes)
        parent, answered_at = trace.set_span_in_context(span), {}
        trace_.on_call = lambda model: answered_at.__setitem__(model, time.time_ns())
        trace_.on_attempt = lambda record: self._observed(parent, span, record, answered_at.pop(record.model, None))
        return span

    def end_request(self, handle: Any, trace_: Any, *, messages: Any = None, answer: str | None = None) -> None:
        if handle is None:
            return
        trace_.on_attempt = trace_.on_call = None
        try:
            self._end(handle, trace_, messages, answer)
        except Exception as exc:  # noqa: BLE001 - telemetry never fails a request
            log.error("request span of %s not recorded: %s: %s", trace_.request_id, type(exc).__name__, exc)

    def _end(self, handle: Any, trace_: Any, messages: Any, answer: str | None) -> None:
        called = [a for a in trace_.attempts if a.status in _CALLED]
        attributes: dict[str, Any] = {
            "gen_ai.usage.input_tokens": sum(a.prompt_tokens for a in called),
            "gen_ai.usage.output_tokens": sum(a.completion_tokens for a in called),
            "cascade.cost_usd": float(trace_.cost_usd), "cascade.escalated": bool(trace_.escalated),
            "cascade.outcome": trace_.outcome, "cascade.reason": self._clean(trace_.plan_reason),
            "cascade.attempts": len(called)}
        if trace_.model is not None:
            system, model_id = self._models.get(trace_.model, (None, trace_.model))
            attributes.update({"gen_ai.response.model": model_id, "cascade.model": trace_.model})
            if system is not None:
                attributes["gen_ai.system"] = attributes["gen_ai.provider.name"] = system
            final = next((a for a in reversed(called)
                          if a.model == trace_.model and a.status in ("ok", "check_failed")), None)
            if final is not None and final.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = [final.finish_reason]
        if getattr(trace_, "cache", None) is not None:       # the policy has a response cache: hit or not
            attributes["cascade.cache_hit"] = bool(trace_.cache_hit)
        if self.capture_content:
            if messages is not None:
                attributes["gen_ai.input.messages"] = self._clean(json.dumps(list(messages), default=str))
            if answer is not None:
                attributes["gen_ai.output.messages"] = self._clean(json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]))
        handle.set_attributes(attributes)
        if trace_.outcome in ("error", "refused"):
            handle.set_status(Status(StatusCode.ERROR, self._clean(trace_.error or "")))
            handle.set_attribute("error.type", (trace_.error or "error").split(":", 1)[0])
        handle.end()

    def refused(self, policy: str, exc: BaseException) -> None:
        """A request refused before it had a plan: a request span in error, without children."""
        try:
            attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "cascade",
                          "cascade.policy": policy, "cascade.outcome": "refused", "error.type": type(exc).__name__,
                          "cascade.reason": self._clean(str(exc))}
            if getattr(exc, "scope", None):
                attributes["cascade.budget.scope"] = exc.scope      # type: ignore[attr-defined]
            span = self._tracer.start_span("chat cascade", kind=SpanKind.CLIENT, attributes=attributes)
            span.set_status(Status(StatusCode.ERROR, self._clean(str(exc))))
            span.end()
        except Exception as err:  # noqa: BLE001 - telemetry never fails a request
            log.error("refusal span not recorded: %s: %s", type(err).__name__, err)

    @contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        """While entered, the trace context of ``headers`` (W3C ``traceparent``) is the current one: the
        request span started meanwhile joins the caller's trace. A malformed header is ignored."""
        token = context.attach(propagate.extract(headers))
        try:
            yield
        finally:
            context.detach(token)

    def shutdown(self) -> None:
        for provider in self._owned:
            provider.shutdown()

    # ---- one attempt ----------------------------------------------------------------------------------
    def _observed(self, parent: Any, span: Any, record: Any, answered_at: int | None) -> None:
        try:
            self._attempt(parent, span, record, answered_at)
        except Exception as exc:  # noqa: BLE001 - telemetry never fails a request
            log.error("attempt span of %s not recorded: %s: %s", record.model, type(exc).__name__, exc)

    def _attempt(self, parent: Any, span: Any, record: Any, answered_at: int | None) -> None:
        """An attempt's record was added to the trace: a child span that lasted its latency and ended when
        the call answered (``answered_at``: the record of an answer follows its checks, a second opinion
        included) or now (a failed call), or an event on the request span (an attempt not made)."""
        if record.status not in _CALLED:
            span.add_event("cascade.attempt.skipped", {"cascade.model": record.model,
                                                         "cascade.reason": self._clean(record.reason)})
            return
        system, model_id = self._models.get(record.model, (None, record.model))
        common = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model_id}
        if system is not None:
            common["gen_ai.system"] = system
        attributes = {**common, "cascade.model": record.model, "cascade.status": record.status,
                      "cascade.cost_usd": float(record.cost_usd), "cascade.reason": self._clean(record.reason),
                      "cascade.second_opinion": record.status == "second_opinion"}
        if system is not None:
            attributes["gen_ai.provider.name"] = system
        if record.status != "error" and record.status != "retried":
            attributes.update({"gen_ai.response.model": model_id,
                               "gen_ai.usage.input_tokens": record.prompt_tokens,
                               "gen_ai.usage.output_tokens": record.completion_tokens})
            if record.finish_reason:
                attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
        if record.checks:
            attributes["cascade.checks.passed"] = [c.name for c in record.checks if c.passed]
            attributes["cascade.checks.failed"] = [c.name for c in record.checks if not c.passed]
        end = answered_at if answered_at is not None and record.status in _ANSWERED else time.time_ns()
        child = self._tracer.start_span(f"chat {model_id}", context=parent, kind=SpanKind.CLIENT,
                                        attributes=attributes, start_time=end - int(record.latency_s * 1e9))
        error_type = None
        if record.error:
            error_type = record.error.split(":", 1)[0]
            child.set_attribute("error.type", error_type)
            child.set_status(Status(StatusCode.ERROR, self._clean(record.error)))
        child.end(end_time=end)
        self._measure(common, record, error_type)

    def _measure(self, common: dict[str, Any], record: Any, error_type: str | None) -> None:
        labels = {**common, **({"error.type": error_type} if error_type else
                               {"gen_ai.response.model": common["gen_ai.request.model"]})}
        self._duration.record(record.latency_s, labels)
        if error_type is None:
            self._tokens.record(record.prompt_tokens, {**labels, "gen_ai.token.type": "input"})
            self._tokens.record(record.completion_tokens, {**labels, "gen_ai.token.type": "output"})

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


def _system_and_id(litellm_model: str) -> tuple[str, str]:
    """``deepseek/deepseek-chat`` -> (``deepseek``, ``deepseek-chat``); no prefix: litellm's default, OpenAI."""
    provider, sep, name = litellm_model.partition("/")
    return (provider, name) if sep else ("openai", litellm_model)


def _exporters(signal: str) -> list[Any]:
    """The exporters ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` name (entry points of the group
    ``opentelemetry_<signal>_exporter``); unset or ``none``: none. An unknown name is a ConfigError."""
    var = _EXPORTER_VARS[signal]
    names = [n.strip() for n in os.environ.get(var, "").split(",") if n.strip()]
    if not names or [n.lower() for n in names] == ["none"]:
        return []
    found = {ep.name: ep for ep in entry_points(group=f"opentelemetry_{signal}_exporter")}
    exporters = []
    for name in names:
        if name not in found:
            hint = f" (pip install {_PACKAGES[name]})" if name in _PACKAGES else ""
            raise ConfigError(f"{var}={os.environ[var]!r}: no {signal} exporter named {name!r} is installed{hint}; "
                              f"installed: {', '.join(sorted(found)) or 'none'}")
        exporters.append(found[name].load()())
    return exporters
