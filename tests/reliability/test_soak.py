"""The soak, short: requests through ``Router.acomplete`` against a provider that fails at random (the fault
mix of ``benchmarks/soak.py``: 10 % 429 — half with Retry-After —, 5 % 500/503, 2 % timeouts, 2 % malformed
bodies, 2 % dropped connections, 5 % bad answers, on both models), then:

* 0 untyped exceptions (every request ends with a response or a typed ``CascadeError``);
* 0 open reservations;
* the ledger == the provider's own tally x the policy's prices, exactly (integer nano-dollars), with one
  ledger entry per completion served;
* >= 99.5 % answered; no answer crossed to another request.

The full run: ``python benchmarks/soak.py --n 5000 --concurrency 64 --store sqlite`` (see RELIABILITY.md).
"""
from __future__ import annotations

import asyncio
import shutil
import time
import warnings

import pytest

from cascade.router import Router
from policies.budget import to_nano
from policies.loader import parse_policy
from tests.cascade.router.conftest import FixedScore, Sleeps, provider_env
from tests.harness.fake_provider import answer
from tests.harness.benchmarks import load_benchmark

pytestmark = pytest.mark.slow

soak = load_benchmark("soak", "cascade_soak")


def check(doc: dict) -> None:
    print("\n" + soak.render(doc))
    assert doc["untyped_errors"] == {}, doc["untyped_examples"]
    assert doc["open_reservations"] == 0
    # ledger == provider tally x price, to the nano-dollar. The one known exception: completions the router
    # abandoned at a client-side timeout after the provider had served them (the BUG pinned by
    # test_a_completion_abandoned_at_the_timeout_is_still_recorded below; it shows when this machine's event
    # loop stalls for > attempt_timeout_s). They are identified request by request from the traces and the
    # provider's books; any other difference, of any size, fails.
    abandoned = doc["abandoned_at_timeout"]
    assert doc["unexplained_mismatches"] == [], doc["unexplained_mismatches"]
    assert doc["ledger_nano"] == doc["total_spent_nano"]
    assert doc["ledger_nano"] + abandoned["nano"] == doc["provider_tally_nano"], doc["mismatches"]
    for alias, m in doc["per_model"].items():
        assert doc["ledger_entries_by_model"].get(alias, 0) + abandoned["by_model"].get(alias, 0) == m["completions"], alias
    if abandoned["completions"]:
        warnings.warn(f"soak: {abandoned['completions']} completions ({abandoned['nano']} n$) abandoned at a client-side "
                      "timeout after the provider served them are missing from the ledger (known BUG)")
    assert doc["answered_share"] >= soak.ANSWERED_BAR
    assert doc["crossed_answers"] == 0
    # the faults really happened, on both models
    for alias in ("deepseek-v2", "gpt-4o"):
        outcomes = doc["per_model"][alias]["outcomes"]
        assert outcomes.get("http_error:429", 0) > 0 and outcomes.get("answer", 0) > 0, (alias, outcomes)


def test_soak_sqlite_400_at_concurrency_32():
    check(soak.run_soak(n=400, concurrency=32, store="sqlite", seed=1))


def test_soak_direct_transport_300_at_concurrency_32():
    """The same faults and books over ``transport: direct`` (our aiohttp calls instead of litellm's)."""
    check(soak.run_soak(n=300, concurrency=32, store="memory", seed=3, transport="direct"))


@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server binary not found")
def test_soak_redis_200_at_concurrency_16():
    check(soak.run_soak(n=200, concurrency=16, store="redis", seed=2))


async def test_a_completion_abandoned_at_the_timeout_is_still_recorded(fake_provider):
    """The client's event loop stalls for 1 s (a GC pause, CPU starvation, a blocking call elsewhere) while
    the provider answers in 0.2 s: the attempt times out on the client side although the provider served
    (and billed) the completion. The retry is answered and paid. The provider served two completions; the
    ledger must not record less than that."""
    fake_provider.script("deepseek-chat", answer("Answer to: stalled", latency=0.2))
    policy = parse_policy("extends: default\nname: stall\nretries: {attempt_timeout_s: 0.5, timeout: {attempts: 2}}\n"
                          "budgets: {store: 'memory://'}\n", source="stall.yaml")
    router = Router(policy, classifier=FixedScore(0.1), budget_store="memory://",
                    env=provider_env(fake_provider.url), sleep=Sleeps())

    async def stall_once() -> None:
        while fake_provider.tally.n_requests == 0:
            await asyncio.sleep(0.001)
        time.sleep(1.0)

    try:
        await router.acomplete([{"role": "user", "content": "warm-up"}])    # litellm's first-call costs
        fake_provider.tally.clear()
        recorded_before = to_nano(router.store.total_spent())
        resp, _ = await asyncio.gather(router.acomplete([{"role": "user", "content": "hi"}]), stall_once())
        # Either the stalled answer is still taken (it arrived while the loop stalled), or the attempt is
        # given up, retried, and the abandoned answer is recorded in the background: the ledger must hold
        # every completion the provider served either way.
        assert resp.cascade.attempts[-1].status == "ok"
        await router.gate.drain()
        served = fake_provider.tally["deepseek-chat"]
        served_nano = served.prompt_tokens * 140 + served.completion_tokens * 280
        assert served.n_completions == len([a for a in resp.cascade.attempts if a.status in ("ok", "retried")])
        recorded = to_nano(router.store.total_spent()) - recorded_before
        assert recorded >= served_nano, "the ledger records less than the provider billed"
    finally:
        router.close()
