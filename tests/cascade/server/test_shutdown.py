"""SIGTERM to ``cascade serve`` (a subprocess) while 16 requests wait on an upstream taking 8 s: after
the process exits, no reservation is open and the ledger holds every answer the provider billed —
whether the requests were let finish (the default graceful timeout) or cut by a short one."""
from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from cascade.budget import open_budget_store
from policies.budget import to_nano
from policies.loader import load_policy

N, LATENCY_S = 16, 8.0
PROMPT_TOKENS, COMPLETION_TOKENS = 30, 120
ANSWER = "The capital of France is Paris."
SCRIPT = {"fallback": {"default": {"kind": "answer", "content": ANSWER, "latency": LATENCY_S,
                                   "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}}}
POLICY = "extends: default\nname: shutdown\nescalation: {checks: [non_empty]}\n"
PRICES = {spec.litellm_model.split("/", 1)[1]: spec.price for spec in load_policy("default").catalog.values()}


def billed_nano(tally: dict) -> tuple[int, int]:
    """(completions the provider served, what they cost at the policy's prices, in nano-dollars)."""
    n = cost = 0
    for model, t in tally["models"].items():
        n += t["completions"]
        cost += to_nano(PRICES[model].cost(PROMPT_TOKENS, COMPLETION_TOKENS)) * t["completions"]
    return n, cost


def fire(url: str, n: int) -> tuple[threading.Thread, list]:
    """``n`` concurrent chat completions from a thread; the list gets each response or exception."""
    results: list = []

    async def main() -> None:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=n)) as client:
            async def one(i: int) -> object:
                body = {"model": "cascade", "messages": [{"role": "user", "content": f"Capital of France? #{i}"}],
                        "user": "alice", "max_tokens": 200}
                return await client.post(f"{url}/v1/chat/completions", json=body)
            results.extend(await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True))
    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    return thread, results


def wait_until(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [None, "1"], ids=["default-graceful-timeout", "graceful-timeout-1s"])
def test_sigterm_with_requests_in_flight_loses_no_money(graceful, tmp_path, spawn_fake_provider, spawn_serve):
    provider = spawn_fake_provider(SCRIPT)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    store_url = f"sqlite:///{tmp_path}/spend.db"
    args = ["--policy", str(policy), "--budget-store", store_url, "--spool-dir", str(tmp_path / "spool")]
    [served] = spawn_serve(provider.url, args + (["--graceful-timeout", graceful] if graceful else []))

    thread, results = fire(served.url, N)
    wait_until(lambda: sum(t["requests"] for t in provider.tally()["models"].values()) == N, 60)
    with open_budget_store(store_url) as store:
        assert store.open_reservations() == N                # 16 requests in flight, each holding money
    sent = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=60)
    exited_after = time.monotonic() - sent
    thread.join(60)

    served_n, billed = billed_nano(provider.tally())
    assert served_n == N                                     # the provider answered (and billed) all 16
    with open_budget_store(store_url) as store:
        assert store.open_reservations() == 0
        assert len(store.ledger()) == N
        assert to_nano(store.total_spent()) == billed
        assert to_nano(store.total_spent(user="alice")) == billed
    ok = [r for r in results if isinstance(r, httpx.Response) and r.status_code == 200]
    if graceful is None:                                     # let finish: every client got its answer
        assert len(ok) == N and all(r.json()["choices"][0]["message"]["content"] == ANSWER for r in ok)
    else:                                                    # cut after 1 s: a typed 503 to retry, and the
        assert len(ok) == 0 and exited_after >= LATENCY_S - 2  # late answers recorded before the exit
        assert all(r.status_code == 503 and r.headers["retry-after"] == "1"
                   and r.json()["error"]["code"] == "server_shutting_down" for r in results)
    log = Path(served.log).read_text()
    assert "still held at shutdown" not in log and "not recorded" not in log
    print(f"\nSIGTERM ({'default' if graceful is None else graceful + ' s'} graceful timeout): exited after "
          f"{exited_after:.1f} s; {len(ok)}/{N} answered; ledger {N} entries = provider {served_n} completions, "
          f"{billed} n$; open reservations 0; exit status {served.proc.returncode}")
