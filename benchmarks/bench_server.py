"""``cascade serve`` overhead: the same requests sent to the provider directly and through the server.

    python benchmarks/bench_server.py [--n 2000] [--concurrency 32] [--rounds 1] [--latency-ms 0]
                                      [--policy default] [--budget-store memory://]

Starts the scripted local provider (``FakeProviderProcess``) and ``python -m cascade.server serve``
(a subprocess pointed at it through DEEPSEEK_API_BASE / OPENAI_API_BASE; ``default`` policy with its own
classifier, a cap-free ``memory://`` budget store), then in one run sends ``--n`` chat completions at
``--concurrency`` with one ``httpx.AsyncClient``:

  (a) direct:  POST <provider>/v1/chat/completions  {"model": "deepseek-chat", ...}
  (b) served:  POST <server>/v1/chat/completions    {"model": "cascade", ...}

and prints throughput and p50/p99 latency of both, the added median latency (ms) and the ratios.
Every prompt of the set scores cheap-first, so DeepSeek-V2 answers (one provider call per request).
Rounds alternate (a) and (b); the figures are medians over rounds. Both sides are warmed up first.
All processes share this machine's cores: the figures include that contention. The CPU milliseconds
per request of the provider and server processes (from /proc) are printed too: unlike latency, they
hardly depend on what else the machine is doing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # tests.harness (the fake provider) lives beside the packages

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.harness.fake_provider import FakeProviderProcess  # noqa: E402

KEY = "sk-bench-not-a-real-key"
PROMPTS = [
    "What is 2+2?", "What is the capital of France?", "Translate 'hello' to Spanish.",
    "Name three primary colors.", "Write a haiku about autumn leaves.", "What is 7 times 8?",
    "Who wrote Romeo and Juliet?", "How many days are in a leap year?", "Spell 'necessary' backwards.",
    "What colour is the sky on a clear day?", "Give a synonym for 'happy'.", "What is the boiling point of water in Celsius?",
    "Name the largest planet in the solar system.", "What is the plural of 'mouse'?", "Convert 3 km to metres.",
    "Say good morning in French.", "What is the square root of 81?", "List the days of the weekend.",
    "Which ocean is the largest?", "What is H2O commonly called?",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provider_env(url: str) -> dict[str, str]:
    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), LITELLM_LOG="ERROR")
    for var in ("DEEPSEEK_API_BASE", "OPENAI_API_BASE", "DEEPSEEK_VL2_API_BASE", "DEEPSEEK_OCR_API_BASE"):
        env[var] = url
    for var in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_VL2_API_KEY", "DEEPSEEK_OCR_API_KEY"):
        env[var] = KEY
    return env


def start_server(provider_url: str, policy: str, store: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "cascade.server", "serve", "--policy", policy, "--port", str(port),
           "--budget-store", store, "--log-level", "warning", *extra]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=provider_env(provider_url), stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"cascade serve exited: {log.read()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("cascade serve did not become healthy within 90 s")


def cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(client: httpx.AsyncClient, url: str, model: str, n: int, concurrency: int,
                   headers: dict[str, str], pids: dict[str, int]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    queue = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for i in queue:
            body = {"model": model, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": 64}
            t0 = time.perf_counter()
            try:
                resp = await client.post(url, json=body, headers=headers)
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1e3
    out = {"rps": n / wall, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
           "errors": errors}
    for name, pid in pids.items():          # CPU milliseconds per request of each server process
        out[f"cpu_{name}"] = (cpu_seconds(pid) - cpu0[name]) / n * 1e3
    return out


async def bench(args: argparse.Namespace, provider: str, server: str,
                pids: dict[str, int]) -> dict[str, dict[str, float]]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    auth = {"Authorization": f"Bearer {KEY}"}
    targets = {"direct": (f"{provider}/chat/completions", "deepseek-chat"),
               "served": (f"{server}/v1/chat/completions", "cascade")}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        for name, (url, model) in targets.items():          # warm-up: connections, litellm's clients
            await run_load(client, url, model, min(300, args.n), args.concurrency, auth, {})
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                url, model = targets[name]
                results[name].append(await run_load(client, url, model, args.n, args.concurrency, auth, pids))
    return {name: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for name, runs in results.items()}


def report(res: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print(f"cascade serve overhead: n={args.n} per round, concurrency {args.concurrency}, {args.rounds} round(s), "
          f"provider latency {args.latency_ms:g} ms, policy {args.policy}, store {args.budget_store}, {os.cpu_count()} cores")
    print(f"{'':28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'CPU ms/req: provider':>22}{'server':>8}")
    for name, label in (("direct", "(a) provider directly"), ("served", "(b) through cascade serve")):
        r = res[name]
        server_cpu = f"{r['cpu_server']:>8.2f}" if name == "served" else f"{'-':>8}"
        print(f"{label:28}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{int(r['errors']):>8}"
              f"{r['cpu_provider']:>22.2f}{server_cpu}")
    d, s = res["direct"], res["served"]
    print(f"added median latency: {s['p50'] - d['p50']:.2f} ms (bar: <= 5 ms); "
          f"p50 ratio served/direct {s['p50'] / d['p50']:.2f}x; throughput ratio {s['rps'] / d['rps']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the provider's scripted latency")
    parser.add_argument("--policy", default="default")
    parser.add_argument("--budget-store", default="memory://")
    args = parser.parse_args()
    script: dict[str, Any] = {"fallback": {"default": {"kind": "answer", "latency": args.latency_ms / 1e3}}}
    with FakeProviderProcess(script) as provider:
        proc, server = start_server(provider.url, args.policy, args.budget_store, [])
        try:
            pids = {"provider": provider.proc.pid, "server": proc.pid}
            res = asyncio.run(bench(args, provider.url, server, pids))
        finally:
            proc.terminate()
            proc.wait(10)
    report(res, args)


if __name__ == "__main__":
    main()
