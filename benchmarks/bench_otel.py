"""What OpenTelemetry GenAI spans and metrics cost per request: ``Router.acomplete`` with telemetry off, and
on (a real SDK TracerProvider with a BatchSpanProcessor and a MeterProvider, exporting to an in-memory
exporter that is emptied as it goes, so only the work the Router adds is measured, not an exporter's I/O).

    python benchmarks/bench_otel.py [--n 2000] [--concurrency 16] [--rounds 3]

Both Routers use the ``default`` policy with ``transport="direct"`` and a ``memory://`` store, against
the same local provider subprocess (``FakeProviderProcess``, latency 0: the client's CPU work is all there
is). Each round serves ``--n`` requests with each Router in alternating blocks of 100; the table reports
the medians over the rounds. No peer emits GenAI spans (issue 14), so there is no peer column.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from cascade.otel import OpenTelemetry  # noqa: E402
from cascade.router import Router  # noqa: E402
from policies.loader import load_policy  # noqa: E402
from tests.harness.fake_provider import FakeProviderProcess  # noqa: E402

SCRIPT = {"fallback": {"default": {"kind": "answer", "content": "The answer is 4.", "prompt_tokens": 12,
                                   "completion_tokens": 6}}}
ENV_VARS = ("DEEPSEEK_API_BASE", "OPENAI_API_BASE", "DEEPSEEK_VL2_API_BASE", "DEEPSEEK_OCR_API_BASE")
BLOCK = 100


class CountingExporter(SpanExporter):
    """Keeps nothing: counts the spans it is given (so memory stays flat over a long run)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans) -> SpanExportResult:  # type: ignore[no-untyped-def]
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def make_router(url: str, telemetry: object | None) -> Router:
    env = {**{var: url for var in ENV_VARS}, "DEEPSEEK_API_KEY": "sk-bench-0000", "OPENAI_API_KEY": "sk-bench-1111",
           "DEEPSEEK_VL2_API_KEY": "sk-bench-2222", "DEEPSEEK_OCR_API_KEY": "sk-bench-3333"}
    extra = {"telemetry": telemetry} if telemetry is not None else {}
    return Router("default", budget_store="memory://", transport="direct", env=env, **extra)


async def serve(router: Router, n: int, concurrency: int) -> float:
    """Seconds to answer ``n`` requests, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            resp = await router.acomplete([{"role": "user", "content": f"What is {i % 50} + 2?"}], max_tokens=16)
            assert resp.cascade.outcome == "ok", resp.cascade.error

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started


async def run(args: argparse.Namespace, url: str) -> None:
    exporter = CountingExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry = OpenTelemetry(load_policy("default").catalog, tracer_provider=tracer_provider,
                              meter_provider=meter_provider)
    routers = {"telemetry off": make_router(url, None), "OpenTelemetry on": make_router(url, telemetry)}
    for router in routers.values():                                    # warm-up: connections, tokenizer
        await serve(router, 200, args.concurrency)
    per_request: dict[str, list[float]] = {name: [] for name in routers}
    for r in range(args.rounds):
        spent = {name: 0.0 for name in routers}
        order = list(routers) if r % 2 == 0 else list(reversed(routers))
        for _ in range(args.n // BLOCK):
            for name in order:
                spent[name] += await serve(routers[name], BLOCK, args.concurrency)
        for name in routers:
            per_request[name].append(spent[name] / (args.n // BLOCK * BLOCK) * 1e6)
    tracer_provider.force_flush()
    off, on = statistics.median(per_request["telemetry off"]), statistics.median(per_request["OpenTelemetry on"])
    print(f"{args.n} requests x {args.rounds} rounds, concurrency {args.concurrency}, direct transport, memory://")
    print(f"{'':20} {'us / request (median)':>22}")
    for name, value in (("telemetry off", off), ("OpenTelemetry on", on)):
        print(f"{name:20} {value:22.0f}")
    print(f"added by telemetry: {on - off:.0f} us per request ({(on - off) / off:+.1%}); "
          f"spans exported: {exporter.spans}")
    for router in routers.values():
        await router.aclose()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    provider = FakeProviderProcess(SCRIPT).start()
    try:
        asyncio.run(run(args, provider.url))
    finally:
        provider.stop()


if __name__ == "__main__":
    main()
