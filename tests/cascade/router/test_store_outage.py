"""The budget store dies while requests are in flight (a real redis-server, SIGKILLed and restarted
on its append-only file): paid answers are returned, their settlements spooled, and applied exactly
once when the store is back — the ledger then equals what the provider billed, nothing stays held."""
from __future__ import annotations

import asyncio
import time

import pytest

from cascade.router import Router
from cascade.spool import SettlementSpool
from policies.budget import to_nano
from policies.errors import BudgetStoreUnavailable
from policies.loader import parse_policy
from tests.harness.fake_provider import answer
from tests.harness.redis_server import RedisProcess

from .conftest import FixedScore, provider_env, user_msg

pytestmark = pytest.mark.redis

CHECKED = "extends: default\nname: outage\nescalation: {checks: [non_empty, {name: min_chars, n: 20}], " \
          "on_exhausted: %s}\n"
LONG = "The answer is (B): the second option, as the text says."
V2 = (0.14e-6, 0.28e-6)


@pytest.fixture
def redis_proc(tmp_path):
    proc = RedisProcess(tmp_path / "redis", persistence="aof-always")
    proc.workdir.mkdir()
    proc.start()
    yield proc
    proc.stop()


def make_router(url: str, fake_provider, spool_dir, on_exhausted: str = "best_answer") -> Router:
    policy = parse_policy(CHECKED % on_exhausted, source="outage.yaml")
    return Router(policy, classifier=FixedScore(0.1), env=provider_env(fake_provider.url), budget_store=url,
                  global_cap_usd=10.0, user_cap_usd=1.0, cap_window="day", spool_dir=str(spool_dir), seed=0)


async def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def billed_nano(fake_provider) -> int:
    t = fake_provider.tally["deepseek-chat"]
    return sum(to_nano(c.prompt_tokens * V2[0] + c.completion_tokens * V2[1]) for c in t.completions)


async def test_paid_answers_survive_a_store_killed_mid_request(redis_proc, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer(LONG, latency=1.0))
    router = make_router(redis_proc.server.url, fake_provider, tmp_path / "spool")
    spool: SettlementSpool = router.gate.spool
    tasks = [asyncio.create_task(router.acomplete(user_msg(f"question {i}"), user="alice")) for i in range(4)]
    await wait_for(lambda: router.store.open_reservations() == 4)
    redis_proc.kill()
    responses = await asyncio.gather(*tasks)

    for resp in responses:                                   # every client gets its paid answer, not a 503
        trace = resp.cascade
        assert resp.choices[0].message.content == LONG and trace.outcome == "ok"
        assert trace.unrecorded_cost_usd == trace.cost_usd > 0
        assert "spooled to" in trace.attempts[-1].reason
    assert len(spool.pending()) == 4

    redis_proc.start()                                       # back, with its append-only file
    await wait_for(lambda: not spool.has_pending())          # applied by the gate in the background
    assert router.store.open_reservations() == 0             # the held reservations were settled, not left
    entries = router.store.ledger()
    assert sorted(e.request_id for e in entries) == sorted(r.cascade.request_id for r in responses)
    assert to_nano(router.store.total_spent()) == billed_nano(fake_provider)
    assert to_nano(router.store.total_spent(user="alice")) == billed_nano(fake_provider)
    await router.aclose()


async def test_a_new_process_applies_what_the_last_one_spooled(redis_proc, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer(LONG, latency=0.5))
    first = make_router(redis_proc.server.url, fake_provider, tmp_path / "spool")
    task = asyncio.create_task(first.acomplete(user_msg("q"), user="bob"))
    await wait_for(lambda: first.store.open_reservations() == 1)
    redis_proc.kill()
    resp = await task
    assert resp.cascade.unrecorded_cost_usd > 0
    first.gate.spool, spooled = None, first.gate.spool       # this process ends before the store is back
    await first.aclose()
    assert spooled.has_pending()

    redis_proc.start()
    second = make_router(redis_proc.server.url, fake_provider, tmp_path / "spool")
    await second.astart()                                    # what a server does at start-up
    await wait_for(lambda: not second.gate.spool.has_pending())
    assert [e.request_id for e in second.store.ledger()] == [resp.cascade.request_id]
    assert to_nano(second.store.total_spent()) == billed_nano(fake_provider)
    assert second.store.open_reservations() == 0
    await second.aclose()


@pytest.mark.parametrize("on_exhausted", ["best_answer", "raise"])
async def test_escalation_the_store_cannot_budget(redis_proc, fake_provider, tmp_path, on_exhausted):
    """The cheap answer (paid) fails its checks; the store dies before the strong attempt can be
    reserved. best_answer: the paid answer is returned (not a 503). raise: BudgetStoreUnavailable."""
    fake_provider.script("deepseek-chat", answer("B", latency=1.0))
    router = make_router(redis_proc.server.url, fake_provider, tmp_path / "spool", on_exhausted)
    task = asyncio.create_task(router.acomplete(user_msg("q")))
    await wait_for(lambda: router.store.open_reservations() == 1)
    redis_proc.kill()
    if on_exhausted == "raise":
        with pytest.raises(BudgetStoreUnavailable):
            await task
    else:
        trace = (await task).cascade
        assert trace.outcome == "best_answer" and trace.model == "deepseek-v2"
        assert [a.status for a in trace.attempts] == ["check_failed", "skipped"]
        assert "budget store" in trace.attempts[1].reason and trace.unrecorded_cost_usd == trace.cost_usd
    assert fake_provider.tally["gpt-4o"].n_requests == 0     # nothing spent that the ledger cannot see
    assert len(router.gate.spool.pending()) == 1
    redis_proc.start()
    await wait_for(lambda: not router.gate.spool.has_pending())
    assert to_nano(router.store.total_spent()) == billed_nano(fake_provider)
    await router.aclose()


async def test_fail_open_spend_is_spooled_and_recorded(fake_provider, tmp_path):
    """fail_open with the store down from the start: the call is unbudgeted, its cost spooled."""
    fake_provider.script("deepseek-chat", answer(LONG))
    proc = RedisProcess(tmp_path / "redis", persistence="aof-always")
    proc.workdir.mkdir()
    policy = parse_policy("extends: default\nname: open\nescalation: {checks: [non_empty]}\n"
                          "budgets: {on_store_unavailable: fail_open}\n", source="open.yaml")
    router = Router(policy, classifier=FixedScore(0.1), env=provider_env(fake_provider.url),
                    budget_store=proc.server.url, global_cap_usd=10.0, spool_dir=str(tmp_path / "spool"))
    resp = await router.acomplete(user_msg("q"))
    assert resp.cascade.unrecorded_cost_usd == resp.cascade.cost_usd > 0
    assert "unbudgeted" in resp.cascade.attempts[-1].reason
    proc.start()
    try:
        applied, error = await router.gate.apply_spool()
        assert (applied, error) == (1, None)
        assert to_nano(router.store.total_spent()) == billed_nano(fake_provider)
        await router.aclose()
    finally:
        proc.stop()


async def test_a_second_opinion_the_store_cannot_budget_abstains(redis_proc, fake_provider, tmp_path):
    """The answer passed its rule checks but its agreement check needs a second model's call, and the
    store died while the answer was coming: the paid answer is returned ("ok"), not a 503."""
    fake_provider.script("deepseek-chat", answer("The answer is (B).", latency=1.0))
    policy = parse_policy("extends: quality-match\nname: agree\nescalation:\n  checks: [non_empty, "
                          "{name: agreement, with: deepseek-coder, extract: auto}]\n", source="agree.yaml")
    router = Router(policy, classifier=FixedScore(0.1), env=provider_env(fake_provider.url),
                    budget_store=redis_proc.server.url, global_cap_usd=10.0, spool_dir=str(tmp_path / "spool"))
    task = asyncio.create_task(router.acomplete(user_msg("Which is right? A. x  B. y  C. z")))
    await wait_for(lambda: router.store.open_reservations() == 1)
    redis_proc.kill()
    resp = await task
    trace = resp.cascade
    assert resp.choices[0].message.content == "The answer is (B)." and trace.outcome == "ok"
    [agreement] = [c for c in trace.attempts[-1].checks if c.name == "agreement"]
    assert agreement.passed and "abstained" in agreement.reason and "budget store" in agreement.reason
    assert [(a.model, a.status) for a in trace.attempts] == [("deepseek-coder", "skipped"), ("deepseek-v2", "ok")]
    assert fake_provider.tally["deepseek-coder"].n_requests == 0 and fake_provider.tally["gpt-4o"].n_requests == 0
    assert trace.unrecorded_cost_usd == trace.cost_usd > 0
    redis_proc.start()
    await wait_for(lambda: not router.gate.spool.has_pending())
    assert to_nano(router.store.total_spent()) == billed_nano(fake_provider)
    await router.aclose()
