"""``cascade serve`` overhead: the same requests sent to the provider directly and through the server.

    python benchmarks/bench_server.py [--n 1000] [--concurrency 32] [--rounds 1]
                                      [--latency-ms 500 0] [--jitter 0.5]
                                      [--policy default] [--budget-store memory://]
                                      [--transport direct|litellm|both]

Starts the scripted local provider (``FakeProviderProcess``) and ``python -m cascade.server serve``
(a subprocess pointed at it through DEEPSEEK_API_BASE / OPENAI_API_BASE; ``default`` policy with its own
classifier and answer checker, a cap-free ``memory://`` budget store), then, for each provider latency
of ``--latency-ms``, sends ``--n`` chat completions at ``--concurrency`` from one aiohttp session:

  (a) direct:  POST <provider>/v1/chat/completions  {"model": "deepseek-chat", ...}
  (b) served:  POST <server>/v1/chat/completions    {"model": "cascade", ...}

Provider latency: request i asks "<prompt> (request i)" and the provider waits a time fixed by that
text, spread evenly over latency x (1 +- jitter) (``keyed_latency``: an LLM's latency varies with
its answer, and a fixed one would keep all 32 clients in lock-step). The benchmark knows each
request's provider time, so it reports the **overhead** of a request = its latency - its provider
time, and the server's **added latency** = median overhead served - median overhead direct (the
client and the network are in both). With ``--latency-ms 0`` every request is CPU-bound: that row
measures throughput at saturation, where the added latency is the queue in front of the server.
Every prompt of the set scores cheap-first, so DeepSeek-V2 answers (one provider call per request,
then the answer checks). Rounds alternate (a) and (b); the figures are medians over rounds. Both
sides are warmed up first. All processes share this machine's cores: the figures include that
contention. The CPU milliseconds per request of the provider and server processes (from /proc) are
printed too: unlike latency, they hardly depend on what else the machine is doing.
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
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # tests.harness (the fake provider) lives beside the packages

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402

from tests.harness.fake_provider import FakeProviderProcess  # noqa: E402
from tests.harness.scripts import keyed_latency  # noqa: E402

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
    """user + system CPU seconds so far of a process and its live descendants (``--workers``);
    Linux /proc, NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return float("nan")
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def request_text(i: int) -> str:
    return f"{PROMPTS[i % len(PROMPTS)]} (request {i})"


async def run_load(session: aiohttp.ClientSession, url: str, model: str, n: int, concurrency: int,
                   headers: dict[str, str], pids: dict[str, int],
                   provider_s: Callable[[str], float]) -> dict[str, float]:
    latencies, overheads = np.zeros(n), np.zeros(n)
    errors = 0
    queue = iter(range(n))

    async def worker() -> None:
        nonlocal errors
        for i in queue:
            text = request_text(i)
            body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 64}
            t0 = time.perf_counter()
            try:
                async with session.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies[i] = time.perf_counter() - t0
            overheads[i] = latencies[i] - provider_s(text)
            errors += not ok
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ms, over = latencies * 1e3, overheads * 1e3
    out = {"rps": n / wall, "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
           "over50": float(np.percentile(over, 50)), "over99": float(np.percentile(over, 99)),
           "errors": errors}
    for name, pid in pids.items():          # CPU milliseconds per request of each server process
        out[f"cpu_{name}"] = (cpu_seconds(pid) - cpu0[name]) / n * 1e3
    return out


async def bench(args: argparse.Namespace, latency_s: float, provider: str, server: str,
                pids: dict[str, int]) -> dict[str, dict[str, float]]:
    low, high = latency_s * (1 - args.jitter), latency_s * (1 + args.jitter)

    def provider_s(text: str) -> float:
        return keyed_latency(text, low, high)

    auth = {"Authorization": f"Bearer {KEY}"}
    targets = {"direct": (f"{provider}/chat/completions", "deepseek-chat"),
               "served": (f"{server}/v1/chat/completions", "cascade")}
    results: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        for name, (url, model) in targets.items():          # warm-up: connections, litellm's clients
            await run_load(session, url, model, min(200, args.n), args.concurrency, auth, {}, provider_s)
        for r in range(args.rounds):
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                url, model = targets[name]
                results[name].append(await run_load(session, url, model, args.n, args.concurrency, auth,
                                                    pids, provider_s))
    return {name: {k: statistics.median(run[k] for run in runs) for k in runs[0]} for name, runs in results.items()}


def report(res: dict[str, dict[str, float]], args: argparse.Namespace, latency_ms: float, transport: str) -> float:
    spread = f" (x 1 +- {args.jitter:g}, fixed per request)" if latency_ms and args.jitter else ""
    print(f"\ncascade serve overhead: provider latency {latency_ms:g} ms{spread}; n={args.n} per round, "
          f"concurrency {args.concurrency}, {args.rounds} round(s), policy {args.policy}, "
          f"store {args.budget_store}, transport {transport}, {args.workers} worker(s), {os.cpu_count()} cores")
    print(f"{'':28}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'overhead p50':>14}{'p99':>8}{'errors':>8}"
          f"{'CPU ms/req: provider':>22}{'server':>8}")
    for name, label in (("direct", "(a) provider directly"), ("served", "(b) through cascade serve")):
        r = res[name]
        server_cpu = f"{r['cpu_server']:>8.2f}" if name == "served" else f"{'-':>8}"
        print(f"{label:28}{r['rps']:>8.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['over50']:>14.2f}{r['over99']:>8.2f}"
              f"{int(r['errors']):>8}{r['cpu_provider']:>22.2f}{server_cpu}")
    d, s = res["direct"], res["served"]
    added = s["over50"] - d["over50"]
    print(f"added median latency: {added:.2f} ms (bar: <= 5 ms){' - saturated: the queue in front of the server' if not latency_ms else ''}; "
          f"p50 served - direct {s['p50'] - d['p50']:.2f} ms; throughput ratio {s['rps'] / d['rps']:.2f}x")
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[500.0, 0.0],
                        help="the provider's mean latency, one run per value")
    parser.add_argument("--jitter", type=float, default=0.5, help="latency spread: mean x (1 +- jitter)")
    parser.add_argument("--policy", default="default")
    parser.add_argument("--budget-store", default="memory://")
    parser.add_argument("--workers", type=int, default=1,
                        help="cascade serve --workers (more than 1 needs --budget-store sqlite:///... or redis://)")
    parser.add_argument("--transport", default="direct", choices=("direct", "litellm", "both"),
                        help="cascade serve --transport (both: one server of each, same run)")
    args = parser.parse_args()
    if not 0 <= args.jitter < 1:
        parser.error("--jitter must be in [0, 1)")
    transports = ("litellm", "direct") if args.transport == "both" else (args.transport,)
    for latency_ms in args.latency_ms:
        low, high = latency_ms / 1e3 * (1 - args.jitter), latency_ms / 1e3 * (1 + args.jitter)
        script: dict[str, Any] = {"fallback": {"default": {"kind": "answer", "latency": ["keyed", low, high]}}}
        for transport in transports:
            with FakeProviderProcess(script) as provider:
                proc, server = start_server(provider.url, args.policy, args.budget_store,
                                            ["--transport", transport, "--workers", str(args.workers)])
                try:
                    pids = {"provider": provider.proc.pid, "server": proc.pid}
                    res = asyncio.run(bench(args, latency_ms / 1e3, provider.url, server, pids))
                finally:
                    proc.terminate()
                    proc.wait(10)
            report(res, args, latency_ms, transport)

if __name__ == "__main__":
    main()
