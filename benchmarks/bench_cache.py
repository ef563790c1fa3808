"""Response cache: what a repeated workload costs with and without the cache, and what a hit costs the
client in CPU, beside litellm's own in-memory cache (``litellm.cache = Cache(type="local")``, when its
caching module imports: it needs litellm's proxy dependencies — orjson, soundfile, ... — which the
``[dev]`` install does not pull in).

    python benchmarks/bench_cache.py [--distinct 50] [--repeats 4] [--latency-ms 20]

Both call the same local OpenAI-compatible server (``FakeProviderProcess``, a subprocess) over real
HTTP. The workload asks ``--distinct`` prompts ``--repeats`` times each (temperature 0), in rounds:
the first round misses, the later ones hit. Figures: provider calls and dollars of the whole workload
through ``Router("default")`` without a cache and with ``cache: {store: memory://}``; the client's CPU
(``time.process_time``) and wall time per request of a miss round and of a hit round, for the Router
(``transport: direct``) and for ``litellm.acompletion(..., caching=True)``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-not-a-real-key"
CACHED = "extends: default\nname: cached\ncache: {store: 'memory://'}\n"


def prompts(n: int) -> list[str]:
    return [f"Question {i}: what is {i} times {i + 3}? Answer with the number only." for i in range(n)]


async def timed_round(call: Callable[[str], Awaitable[Any]], texts: list[str]) -> tuple[float, float]:
    """(CPU ms, wall ms) per request of one sequential round."""
    cpu, wall = time.process_time(), time.perf_counter()
    for text in texts:
        await call(text)
    n = len(texts)
    return (time.process_time() - cpu) * 1e3 / n, (time.perf_counter() - wall) * 1e3 / n


async def run_router(policy: Any, url: str, texts: list[str], repeats: int) -> dict[str, Any]:
    from cascade.router import Router
    env = {"DEEPSEEK_API_KEY": KEY, "OPENAI_API_KEY": KEY, "DEEPSEEK_API_BASE": url, "OPENAI_API_BASE": url}
    router = Router(policy, budget_store="memory://", env=env, transport="direct", seed=0)
    spent, rounds = 0.0, []

    async def call(text: str) -> None:
        nonlocal spent
        resp = await router.acomplete([{"role": "user", "content": text}], temperature=0)
        spent += resp.cascade.cost_usd
    try:
        await call("warm-up question")
        for _ in range(repeats):
            rounds.append(await timed_round(call, texts))
    finally:
        await router.aclose()
    return {"spent": spent, "rounds": rounds}


async def run_litellm(url: str, texts: list[str], repeats: int) -> dict[str, Any]:
    import litellm
    from litellm.caching.caching import Cache
    litellm.cache = Cache(type="local")

    async def call(text: str) -> None:
        await litellm.acompletion(model="openai/deepseek-chat", api_base=url, api_key=KEY, temperature=0,
                                  messages=[{"role": "user", "content": text}], caching=True)
    await call("warm-up question")
    return {"rounds": [await timed_round(call, texts) for _ in range(repeats)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distinct", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    args = ap.parse_args()
    from policies.loader import parse_policy
    from tests.harness.fake_provider import FakeProviderProcess
    texts = prompts(args.distinct)
    script = {"fallback": {"default": {"kind": "answer", "content": "42", "latency": args.latency_ms / 1e3,
                                       "prompt_tokens": 400, "completion_tokens": 200}}}
    with tempfile.TemporaryDirectory(prefix="bench-cache-"), FakeProviderProcess(script) as server:
        plain = asyncio.run(run_router("default", server.url, texts, args.repeats))
        calls_plain = sum(m["requests"] for m in server.tally()["models"].values())
        server.reset()
        server.load_scripts(script)
        cached = asyncio.run(run_router(parse_policy(CACHED, source="cached.yaml"), server.url, texts, args.repeats))
        calls_cached = sum(m["requests"] for m in server.tally()["models"].values())
        try:
            peer = asyncio.run(run_litellm(server.url, texts, args.repeats))
        except ImportError as exc:        # litellm's caching module imports its proxy's dependencies
            peer = None
            print(f"litellm Cache(type='local') unavailable here: {exc} (its caching module imports litellm's "
                  "proxy dependencies, which the [dev] install does not pull in)")
    n = args.distinct * args.repeats
    print(f"workload: {args.distinct} distinct prompts x {args.repeats} = {n} requests (temperature 0), "
          f"provider latency {args.latency_ms:g} ms; +1 warm-up request each")
    print(f"{'':34}{'provider calls':>15}{'spent $':>12}")
    print(f"{'Router(default), no cache':34}{calls_plain:>15,}{plain['spent']:>12.6f}")
    print(f"{'Router(default), cache memory://':34}{calls_cached:>15,}{cached['spent']:>12.6f}")
    print(f"{'':34}{'miss CPU ms':>12}{'miss wall ms':>13}{'hit CPU ms':>11}{'hit wall ms':>12}")
    for label, doc in (("Router cache (direct transport)", cached), ("litellm Cache(type='local')", peer)):
        if doc is None:
            continue
        miss, hits = doc["rounds"][0], doc["rounds"][1:]
        hit_cpu = sum(r[0] for r in hits) / len(hits)
        hit_wall = sum(r[1] for r in hits) / len(hits)
        print(f"{label:34}{miss[0]:>12.3f}{miss[1]:>13.3f}{hit_cpu:>11.3f}{hit_wall:>12.3f}")


if __name__ == "__main__":
    main()
