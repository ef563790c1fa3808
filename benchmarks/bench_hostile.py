"""``cascade serve`` under hostile input: the bar of issue 11, measured against a real server process.

    python benchmarks/bench_hostile.py [--concurrency 300] [--cap-usd 0.02] [--prompt-mb 7] [--json]

Starts the scripted local provider (``FakeProviderProcess``: every model answers "ok" after 0.3 s,
10 prompt / 5 completion tokens) and ``python -m cascade.server serve`` with API keys and a per-user
day cap (``--user-cap-usd 0.02 --cap-window day``, memory:// store, the direct transport), then:

  1. large prompt   a one-message prompt of ``--prompt-mb`` MB, while /healthz is polled every 20 ms:
                    the refusal's status and time, /healthz's worst and median answer time.
  2. beside it      the same, with two 1 MB prompts (under the prompt limit: they are tokenized, in the
                    planning pool) and 25 small requests one after the other: the small ones' latency.
  3. nested JSON    ``metadata`` nested 1,000 deep: the status.
  4. concurrency    ``--concurrency`` requests at once (max_tokens 4000: $0.00112 reserved each) from one
                    user under the cap: 200s, 429s and the largest Retry-After.

The bar (issue 11): 1. refused in <= 1 s while /healthz answers in <= 0.5 s; 3. a 4xx; 4. no
Retry-After above 60 s. Prints a table (or ``--json``) and PASS / FAIL against it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402

from bench_server import start_server  # noqa: E402
from tests.harness.fake_provider import FakeProviderProcess  # noqa: E402

USER_KEY = "sk-bench-hostile-alice-0123456789"
AUTH = {"Authorization": f"Bearer {USER_KEY}"}
SCRIPT = {"models": {"*": {"default": {"kind": "answer", "content": "ok", "latency": 0.3,
                                       "prompt_tokens": 10, "completion_tokens": 5}}}}


def poll_health(url: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(url + "/healthz")
            out.append(time.perf_counter() - started)
            time.sleep(0.02)


def chat(url: str, body: dict[str, Any] | bytes, timeout: float = 120) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    resp = httpx.post(url + "/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"},
                      timeout=timeout, **kwargs)
    return resp, time.perf_counter() - started


def large_prompt(url: str, mb: float) -> dict[str, Any]:
    body = json.dumps({"model": "cascade", "messages": [{"role": "user", "content": "word " * int(mb * 200_000)}]})
    stop, health = threading.Event(), []
    poller = threading.Thread(target=poll_health, args=(url, stop, health))
    poller.start()
    time.sleep(0.3)
    resp, seconds = chat(url, body.encode())
    time.sleep(0.3)
    stop.set()
    poller.join()
    return {"status": resp.status_code, "code": resp.json()["error"]["code"], "refused_s": seconds,
            "healthz_max_s": max(health), "healthz_median_s": statistics.median(health), "healthz_polls": len(health)}


def beside_large(url: str) -> dict[str, Any]:
    text = "hello world " * 85_000
    results: list[int] = []
    bigs = [threading.Thread(target=lambda: results.append(
        chat(url, {"model": "cascade", "messages": [{"role": "user", "content": text}], "max_tokens": 16})[0].status_code))
        for _ in range(2)]
    for t in bigs:
        t.start()
    small = [chat(url, {"model": "cascade", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})[1]
             for _ in range(25)]
    for t in bigs:
        t.join()
    return {"large_statuses": sorted(results), "small_max_s": max(small), "small_median_s": statistics.median(small)}


def nested(url: str, depth: int = 1_000) -> dict[str, Any]:
    raw = ('{"model": "cascade", "messages": [{"role": "user", "content": "x"}], "metadata": '
           + "[" * depth + "]" * depth + "}").encode()
    resp, _ = chat(url, raw)
    return {"depth": depth, "status": resp.status_code, "code": resp.json()["error"]["code"]}


async def concurrent(url: str, n: int) -> dict[str, Any]:
    body = {"model": "cascade", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n)) as client:
        responses = await asyncio.gather(*[client.post(url + "/v1/chat/completions", json=body, headers=AUTH)
                                           for _ in range(n)])
    waits = [int(r.headers["retry-after"]) for r in responses if r.status_code == 429]
    statuses: dict[int, int] = {}
    for r in responses:
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    in_flight = sum("in flight" in r.json()["error"]["message"] for r in responses if r.status_code == 429)
    return {"n": n, "statuses": statuses, "retry_after_max_s": max(waits, default=None),
            "retry_after_values": sorted(set(waits)), "refusals_saying_in_flight": in_flight}


def verdict(doc: dict[str, Any]) -> list[str]:
    big, nest, conc = doc["large_prompt"], doc["nested_json"], doc["concurrency"]
    failures = []
    if big["status"] not in (400, 413) or big["refused_s"] > 1.0 or big["healthz_max_s"] > 0.5:
        failures.append("large prompt: refused in <= 1 s with /healthz <= 0.5 s")
    if not 400 <= nest["status"] < 500:
        failures.append("nested JSON: a 4xx")
    if conc["retry_after_max_s"] is not None and conc["retry_after_max_s"] > 60:
        failures.append("concurrency: no Retry-After above 60 s")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--cap-usd", type=float, default=0.02)
    parser.add_argument("--prompt-mb", type=float, default=7.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with FakeProviderProcess(SCRIPT) as provider, tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        keys.write_text(json.dumps({USER_KEY: "alice"}))
        proc, url = start_server(provider.url, "default", "memory://",
                                 ["--keys", str(keys), "--user-cap-usd", str(args.cap_usd), "--cap-window", "day"])
        try:
            chat(url, {"model": "cascade", "messages": [{"role": "user", "content": "warm up"}]})
            doc = {"large_prompt": large_prompt(url, args.prompt_mb), "beside_large": beside_large(url),
                   "nested_json": nested(url), "concurrency": asyncio.run(concurrent(url, args.concurrency))}
        finally:
            proc.terminate()
            proc.wait(10)
    failures = verdict(doc)
    doc["result"] = "FAIL: " + "; ".join(failures) if failures else "PASS"
    print(json.dumps(doc, indent=2) if args.json else render(doc, args))
    return 1 if failures else 0


def render(doc: dict[str, Any], args: argparse.Namespace) -> str:
    big, side, nest, conc = doc["large_prompt"], doc["beside_large"], doc["nested_json"], doc["concurrency"]
    rows = [
        (f"{args.prompt_mb:g} MB one-message prompt", f"{big['status']} {big['code']} in {big['refused_s']:.3f} s "
                                                    "(bar: <= 1 s)"),
        ("  /healthz meanwhile", f"max {big['healthz_max_s']:.3f} s, median {big['healthz_median_s']:.3f} s over "
                                 f"{big['healthz_polls']} polls (bar: <= 0.5 s)"),
        ("two 1 MB prompts (tokenized)", f"statuses {side['large_statuses']}"),
        ("  25 small requests beside them", f"max {side['small_max_s']:.3f} s, median {side['small_median_s']:.3f} s"),
        ("1,000-deep nested JSON", f"{nest['status']} {nest['code']} (bar: a 4xx)"),
        (f"{conc['n']} concurrent, ${args.cap_usd:g} user day cap", f"statuses {conc['statuses']}"),
        ("  Retry-After", f"max {conc['retry_after_max_s']} s, values {conc['retry_after_values']}, "
                          f"{conc['refusals_saying_in_flight']} refusals say 'in flight' (bar: <= 60 s)"),
        ("RESULT", doc["result"]),
    ]
    width = max(len(r[0]) for r in rows) + 2
    return "\n".join(f"{name:<{width}}{value}" for name, value in rows)


if __name__ == "__main__":
    sys.exit(main())
