"""Two ``cascade serve`` replicas (subprocesses) sharing one Redis budget store with a global cap, hammered
with 800 concurrent requests: the cap holds, nothing stays reserved, the ledger equals what the
responses reported, and the cap is used (issue "Scale out and serve": spend <= cap and >= 80% of it).

Why >= 80% is reachable: each attempt reserves its worst case (prompt-token bound + max_tokens at the
policy's price) and commits its real cost. If every request arrived at once, the cap would admit
cap / worst_case requests and end at about real / worst_case of the cap; requests arriving while
earlier ones settle use the freed room. Clients here send max_tokens=220 for answers of 200 tokens
(real / worst case ~ 0.9), as a client that knows its answers' length would.
"""
from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from cascade.budget import open_budget_store

CAP_USD = 0.01
N_REQUESTS = 800
PROMPT_TOKENS, COMPLETION_TOKENS, MAX_TOKENS = 20, 200, 220
COST = (PROMPT_TOKENS * 0.14 + COMPLETION_TOKENS * 0.28) / 1e6       # deepseek-v2's price in the default policy
PROMPTS = ["What is 2+2?", "What is the capital of France?", "Name three primary colors.",
           "What is 7 times 8?", "Which ocean is the largest?", "Say good morning in French."]
SCRIPT = {"fallback": {"default": {"kind": "answer", "content": "A short answer.", "latency": 0.005,
                                   "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}}}


async def hammer(urls: list[str], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def one(i: int) -> httpx.Response:
            body = {"model": "cascade", "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                    "max_tokens": MAX_TOKENS, "user": f"user{i % 7}"}
            return await client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=body)
        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.redis
@pytest.mark.slow
def test_two_replicas_share_a_redis_global_cap(redis_url, spawn_fake_provider, spawn_serve):
    import redis
    store_url = redis_url.rsplit("/", 1)[0] + "/1"
    redis.Redis.from_url(store_url).flushdb()
    provider = spawn_fake_provider(SCRIPT)
    args = ["--policy", "default", "--budget-store", store_url, "--global-cap-usd", str(CAP_USD)]
    replicas = spawn_serve(provider.url, args, args)

    responses = asyncio.run(hammer([r.url for r in replicas], N_REQUESTS))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == N_REQUESTS, {r.status_code for r in responses}
    assert all(r.json()["error"]["code"] == "budget_exceeded" and int(r.headers["retry-after"]) >= 1 for r in refused)
    reported = [r.json()["cascade"]["cost_usd"] for r in ok]
    assert all(c == pytest.approx(COST) for c in reported)
    with open_budget_store(store_url) as store:
        spent = store.total_spent()
        assert store.open_reservations() == 0
        assert spent == pytest.approx(sum(reported), abs=1e-9)
        assert sum(store.spend_by_user().values()) == pytest.approx(spent, abs=1e-9)
    assert spent <= CAP_USD
    used = spent / CAP_USD
    print(f"\nshared cap: {len(ok)} answered, {len(refused)} refused (429); spent ${spent:.6f} of "
          f"${CAP_USD} = {used:.1%} (per-request cost ${COST:.7f}, max_tokens {MAX_TOKENS})")
    assert used >= 0.80
    served_by = {r.json()["cascade"]["request_id"] for r in ok}
    assert len(served_by) == len(ok)
    assert _metric_sum(replicas, "cascade_requests_total") == N_REQUESTS


def _metric_sum(replicas: list[Any], name: str) -> float:
    total = 0.0
    for r in replicas:
        for line in httpx.get(r.url + "/metrics").text.splitlines():
            if line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_workers_share_one_sqlite_cap_and_sum_their_metrics(tmp_path, spawn_fake_provider, spawn_serve):
    """``cascade serve --workers 2``: two processes behind one port, one SQLite ledger and one cap, and
    /metrics of either worker counts the requests of both."""
    store_url = f"sqlite:///{tmp_path}/spend.db"
    provider = spawn_fake_provider(SCRIPT)
    cap = 60 * COST + COST / 2       # room for 60 requests' real cost; their worst case reserves more
    [served] = spawn_serve(provider.url, ["--budget-store", store_url, "--global-cap-usd", str(cap),
                                          "--workers", "2", "--transport", "direct"])
    responses = asyncio.run(hammer([served.url], 200))
    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) + sum(r.status_code == 429 for r in responses) == 200
    with open_budget_store(store_url) as store:
        assert store.open_reservations() == 0
        assert store.total_spent() == pytest.approx(sum(r.json()["cascade"]["cost_usd"] for r in ok), abs=1e-9)
        assert store.total_spent() <= cap
    assert 40 <= len(ok) <= 60
    assert _metric_sum([served], "cascade_requests_total") == 200
