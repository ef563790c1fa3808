"""Per-request overhead: ``Router.acomplete`` beside bare ``litellm.acompletion`` and ``litellm.Router``.

    python benchmarks/bench_overhead.py [--n 2000] [--concurrency 32] [--rounds 3] [--latency-ms 0]

All contenders call the same local OpenAI-compatible server (``FakeProviderProcess``: a subprocess, so
it does not share the client's GIL) over real HTTP, with the same prompt set, at the same concurrency:

* bare ``litellm.acompletion(model="deepseek/deepseek-chat", api_base=..., api_key=...)``;
* ``litellm.Router(model_list=[...]).acompletion(model="deepseek-v2", ...)`` (litellm's own router);
* ``cascade.providers.acall(...)``: the Router's provider call alone (litellm with the Router's settings:
  no cost calculation or success-logging payload inside its calls, since the cascade prices usage itself),
  to separate what the Router's own work costs from what its litellm call costs;
* ``cascade.Router("default").acomplete(...)``: the ``default`` policy with its own classifier (every
  prompt of the set scores cheap-first, so DeepSeek-V2 answers; the answer passes the policy's checks),
  once with a ``memory://`` budget store and once with the embedded default, ``sqlite:///<tmp>/spend.db``;
  and once more with ``memory://`` and ``transport="direct"`` (no litellm in the call: cascade.direct);
* ``cascade.direct.acall(...)``: that transport's call alone.

In each round every contender serves ``--n`` requests, in blocks of ``--block`` that alternate between
the contenders (the order rotates each round), so load from elsewhere on the machine hits them alike; the
table reports the median over the rounds, and the ratios are medians of the per-round ratios. Every
contender is warmed up first (litellm's client cache, the pools' connections, the tokenizer, the SQLite
connection), and the run checks that no HTTP client was created while measuring. The default server
latency is 0: the worst case for overhead, since the client's CPU work is then all there is.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # tests.harness (the fake provider) lives beside the packages

import numpy as np  # noqa: E402

KEY = "sk-bench-not-a-real-key"
LITELLM_MODEL = "deepseek/deepseek-chat"
BAR = 1.10
PROMPTS = [
    "What is 2+2?", "What is the capital of France?", "Translate 'hello' to Spanish.",
    "Name three primary colors.", "Write a haiku about autumn leaves.", "What is 7 times 8?",
    "Who wrote Romeo and Juliet?", "How many days are in a leap year?", "Spell 'necessary' backwards.",
    "What colour is the sky on a clear day?", "Give a synonym for 'happy'.",
    "What is the boiling point of water in Celsius?",
    "Name the largest planet in the solar system.", "What is the plural of 'mouse'?", "Convert 3 km to metres.",
    "Say good morning in French.", "What is the square root of 81?", "List the days of the weekend.",
    "Which ocean is the largest?", "What is H2O commonly called?",
]

Call = Callable[[list], Awaitable[Any]]


@dataclass
class Contender:
    name: str
    store: str
    call: Call
    check: Callable[[Any], str | None] = lambda resp: None       # None: the response is as expected
    close: Callable[[], Any] = lambda: None
    rounds: list[dict[str, float]] = field(default_factory=list)
    errors: int = 0
    unexpected: int = 0
    first_problem: str | None = None


# ── the contenders ─────────────────────────────────────────────────────────────────────────────

def bare_litellm(litellm: Any, url: str) -> Contender:
    async def call(messages: list) -> Any:
        return await litellm.acompletion(model=LITELLM_MODEL, messages=messages, api_base=url, api_key=KEY)
    return Contender("litellm.acompletion (bare)", "-", call)


def litellm_router(litellm: Any, url: str) -> Contender:
    router = litellm.Router(model_list=[{"model_name": "deepseek-v2", "litellm_params": {
        "model": LITELLM_MODEL, "api_base": url, "api_key": KEY}}])

    async def call(messages: list) -> Any:
        return await router.acompletion(model="deepseek-v2", messages=messages)
    return Contender("litellm.Router.acompletion", "-", call)


def cascade_acall(url: str) -> Contender:
    """The Router's provider call alone (no classifier, plan, budget, retries or checks): what the Router
    pays litellm for a request. Router minus this is the Router's own overhead."""
    from cascade.providers import acall

    async def call(messages: list) -> Any:
        return await acall(litellm_model=LITELLM_MODEL, messages=messages, api_base=url, api_key=KEY,
                           timeout_s=60.0, params={"max_tokens": 1024}, model_alias="deepseek-v2")
    return Contender("cascade providers.acall", "-", call)


def cascade_direct_acall(url: str) -> Contender:
    """The same call over the direct transport (cascade.direct: no litellm in the call)."""
    from cascade import direct

    async def call(messages: list) -> Any:
        return await direct.acall(litellm_model=LITELLM_MODEL, messages=messages, api_base=url, api_key=KEY,
                                  timeout_s=60.0, params={"max_tokens": 1024}, model_alias="deepseek-v2")
    return Contender("cascade direct.acall", "-", call)


def cascade_router(url: str, store: str, policy: str, classifier: str | None,
                   transport: str | None = None) -> Contender:
    from cascade.router import Router
    env = {"DEEPSEEK_API_BASE": url, "DEEPSEEK_API_KEY": KEY, "OPENAI_API_BASE": url, "OPENAI_API_KEY": KEY}
    router = Router(policy, budget_store=store, env=env, classifier=_classifier(classifier), transport=transport)

    async def call(messages: list) -> Any:
        return await router.acomplete(messages)

    def check(resp: Any) -> str | None:
        t = resp.cascade
        if t.model != "deepseek-v2" or t.escalated or t.outcome != "ok":
            return f"answered by {t.model} (escalated={t.escalated}, outcome={t.outcome}, score={t.score:.2f})"
        return None
    name = "cascade Router.acomplete" + (f" ({transport})" if transport else "")
    return Contender(name, store, call, check, router.close)


class FixedScore:
    name = "fixed"

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, texts: list[str]) -> Any:
        return np.full(len(texts), self.value)

    def score_one(self, text: str) -> float:
        return self.value


def _classifier(name: str | None) -> Any:
    return FixedScore(0.1) if name == "fixed" else name       # None: the policy's own classifier


# ── measuring ──────────────────────────────────────────────────────────────────────────────────

async def run_round(c: Contender, messages: list[list], concurrency: int) -> tuple[list[float], float, float]:
    """Send every message set through ``c`` with ``concurrency`` workers: per-request latencies, wall time
    and this process's CPU time (all threads: the Router's store calls run in worker threads)."""
    latencies: list[float] = []
    queue = iter(messages)

    async def worker() -> None:
        for msgs in queue:
            t0 = time.perf_counter()
            try:
                resp = await c.call(msgs)
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                c.errors += 1
                c.first_problem = c.first_problem or f"{type(exc).__name__}: {str(exc)[:200]}"
                continue
            latencies.append(time.perf_counter() - t0)
            problem = c.check(resp)
            if problem is not None:
                c.unexpected += 1
                c.first_problem = c.first_problem or problem
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started, time.process_time() - cpu


def summarise(latencies: list[float], wall_s: float, cpu_s: float) -> dict[str, float]:
    a = np.asarray(latencies) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "rps": len(latencies) / wall_s if wall_s > 0 else float("nan"),
            "cpu": cpu_s / max(1, len(latencies)) * 1e3}


def client_cache_size(litellm: Any) -> int:
    cache = getattr(litellm, "in_memory_llm_clients_cache", None)
    return len(getattr(cache, "cache_dict", {}) or {})


async def measure(contenders: list[Contender], args: argparse.Namespace, litellm: Any) -> int:
    """Warm up, then ``args.rounds`` rounds; in a round every contender serves ``args.n`` requests, in
    blocks of ``args.block`` that alternate between the contenders (A B C D A B C D ...), so a burst of
    load from elsewhere on the machine lands on all of them. Returns the clients created meanwhile."""
    prompts = [[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}] for i in range(args.n)]
    for c in contenders:                                         # warm up, also checks the setup
        await run_round(c, prompts[: max(4 * args.concurrency, 100)], args.concurrency)
    clients_before = client_cache_size(litellm)
    blocks = [prompts[i:i + args.block] for i in range(0, args.n, args.block)]
    for r in range(args.rounds):
        order = contenders[r % len(contenders):] + contenders[: r % len(contenders)]
        acc = {id(c): ([], 0.0, 0.0) for c in contenders}
        for block in blocks:
            for c in order:
                gc.collect()
                latencies, wall, cpu = await run_round(c, block, args.concurrency)
                done, w, u = acc[id(c)]
                acc[id(c)] = (done + latencies, w + wall, u + cpu)
        for c in contenders:
            c.rounds.append(summarise(*acc[id(c)]))
    return client_cache_size(litellm) - clients_before


# ── reporting ──────────────────────────────────────────────────────────────────────────────────

def med(c: Contender, key: str) -> float:
    return statistics.median(r[key] for r in c.rounds)


def ratio_per_round(a: Contender, b: Contender, key: str) -> list[float]:
    return [ra[key] / rb[key] for ra, rb in zip(a.rounds, b.rounds)]


def report(contenders: list[Contender], args: argparse.Namespace, new_clients: int) -> bool:
    """Print the figures; False when the bar is missed or a contender had errors."""
    print_table(contenders, args)
    ok = print_ratios(contenders)
    print_own_work(contenders)
    print(f"\nHTTP clients created while measuring (growth of litellm's client cache after the warm-up): {new_clients}")
    for c in contenders:
        if c.errors or c.unexpected:
            ok = False
            print(f"PROBLEM {c.name} [{c.store}]: {c.errors} errors, {c.unexpected} unexpected answers; "
                  f"first: {c.first_problem}")
    return ok


def print_table(contenders: list[Contender], args: argparse.Namespace) -> None:
    print(f"{'contender':34s} {'budget store':13s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>8s} "
          f"{'CPU ms/req':>10s} {'errors':>6s}")
    for c in contenders:
        print(f"{c.name:34s} {_short(c.store):13s} {med(c, 'p50'):8.2f} {med(c, 'p99'):8.2f} {med(c, 'rps'):8.1f} "
              f"{med(c, 'cpu'):10.2f} {c.errors + c.unexpected:6d}")
    stores = sorted({c.store for c in contenders if c.store != "-"})
    print("budget stores: " + "; ".join(f"{_short(s)} = {s}" for s in stores))
    print(f"(median over {args.rounds} rounds; CPU: this process, all threads, per request)")
    print("\nper round (order rotates each round), p50 ms / req/s / CPU ms per request:")
    for c in contenders:
        rounds = "   ".join(f"{r['p50']:7.2f} / {r['rps']:6.1f} / {r['cpu']:5.2f}" for r in c.rounds)
        print(f"  {c.name:34s} {_short(c.store):13s} {rounds}")


def print_ratios(contenders: list[Contender]) -> bool:
    bare, ok = contenders[0], True
    print("\nratios to bare litellm (median over rounds of the per-round ratio; per-round values in brackets):")
    for c in contenders[1:]:
        lat, thr = ratio_per_round(c, bare, "p50"), ratio_per_round(c, bare, "rps")
        p99, cpu = ratio_per_round(c, bare, "p99"), ratio_per_round(c, bare, "cpu")
        print(f"  {c.name} [{_short(c.store)}]:\n"
              f"      median latency {statistics.median(lat):.3f}x [{_fmt(lat)}]   p99 {statistics.median(p99):.3f}x\n"
              f"      throughput     {statistics.median(thr):.3f}x [{_fmt(thr)}]   "
              f"CPU/request {statistics.median(cpu):.3f}x")
        if c.name.startswith("cascade Router"):
            passed = statistics.median(lat) <= BAR
            ok &= passed
            print(f"      bar: median latency ratio <= {BAR:.2f}: {'PASS' if passed else 'MISS'}")
    return ok


def print_own_work(contenders: list[Contender]) -> None:
    acall = next((c for c in contenders if c.name == "cascade providers.acall"), None)
    if acall is None:
        return
    print("\nthe Router's own work, over its litellm call (cascade providers.acall, same request):")
    for c in contenders:
        if c.name.startswith("cascade Router"):
            lat = ratio_per_round(c, acall, "p50")
            cpu = [a["cpu"] - b["cpu"] for a, b in zip(c.rounds, acall.rounds)]
            print(f"  {c.name} [{_short(c.store)}]: median latency {statistics.median(lat):.3f}x [{_fmt(lat)}], "
                  f"{statistics.median(cpu) * 1e3:+.0f} µs CPU per request")


def _short(store: str) -> str:
    return store.split(":", 1)[0] + "://" if "://" in store else store


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="requests per contender per round")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block", type=int, default=250, help="requests per contender before the next one's turn")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="the server's latency per request")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--classifier", default=None,
                    help="the policy's own when omitted; 'fixed' for a constant low score (cheap first)")
    args = ap.parse_args(argv)

    from tests.harness.fake_provider import FakeProviderProcess
    from cascade.providers import load_litellm
    litellm = load_litellm()       # the Router's own import path: litellm configured as the Router uses it
    script = {"fallback": {"default": {"kind": "answer", "latency": args.latency_ms / 1e3}}}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, FakeProviderProcess(script) as server:
        contenders = [bare_litellm(litellm, server.url), litellm_router(litellm, server.url), cascade_acall(server.url),
                      cascade_direct_acall(server.url),
                      cascade_router(server.url, "memory://", args.policy, args.classifier),
                      cascade_router(server.url, f"sqlite:///{tmp}/spend.db", args.policy, args.classifier),
                      cascade_router(server.url, "memory://", args.policy, args.classifier, transport="direct")]
        classifier = args.classifier or "policy's own"
        print(f"bench_overhead: {args.n} requests per contender per round, {args.rounds} rounds, concurrency "
              f"{args.concurrency}, contenders alternating every {args.block} requests")
        print(f"Python {sys.version.split()[0]}, litellm {_version('litellm')}, {os.cpu_count()} CPUs")
        print(f"server: FakeProviderProcess at {server.url} (subprocess), latency {args.latency_ms:g} ms; "
              f"{len(PROMPTS)} distinct prompts, the same for every contender")
        print(f"cascade: policy {args.policy!r}, classifier: {classifier}; no trace sink\n")
        try:
            new_clients = asyncio.run(measure(contenders, args, litellm))
        finally:
            for c in contenders:
                c.close()
        ok = report(contenders, args, new_clients)
        tally = server.tally()
    print(f"server tally: {_requests(tally)} chat requests served")
    return 0 if ok else 1


def _version(dist: str) -> str:
    from importlib.metadata import version
    try:
        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def _requests(tally: dict) -> int:
    models = tally.get("models", tally)
    return sum(int(m.get("requests", 0)) for m in models.values() if isinstance(m, dict))


if __name__ == "__main__":
    sys.exit(main())
