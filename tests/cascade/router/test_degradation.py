"""Graceful degradation: the strong model down, and the budget store down (fail closed / open)."""
from __future__ import annotations

import pytest

from cascade.budget import open_budget_store
from cascade.router import Router
from policies.errors import BudgetStoreUnavailable, EscalationExhausted
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, http_error, wrong_format

from .conftest import FixedScore, provider_env, user_msg

STRICT = "extends: default\nname: strict\nescalation: {on_exhausted: raise, checks: [non_empty, {name: min_chars, n: 60}]}\n"


async def test_strong_down_returns_best_checked_answer_and_says_why(make_router, fake_provider):
    fake_provider.script("deepseek-chat", wrong_format("short"))
    fake_provider.script("gpt-4o", http_error(503))
    policy = parse_policy(STRICT.replace("raise", "best_answer"), source="s.yaml")
    resp = await make_router(policy, score=0.1).acomplete(user_msg("q"))
    trace = resp.cascade
    assert trace.outcome == "best_answer" and trace.model == "deepseek-v2"
    assert trace.attempts[0].status == "check_failed" and "min_chars" in trace.attempts[0].reason
    assert trace.attempts[-1].status == "error" and "ServerError" in trace.attempts[-1].error


async def test_strong_down_raises_when_policy_says_raise(make_router, fake_provider):
    fake_provider.script("deepseek-chat", wrong_format("short"))
    fake_provider.script("gpt-4o", http_error(503))
    with pytest.raises(EscalationExhausted) as info:
        await make_router(parse_policy(STRICT, source="s.yaml"), score=0.1).acomplete(user_msg("q"))
    assert "min_chars" in str(info.value) and "ServerError" in str(info.value)


def _router_on_dead_redis(fake_provider, policy_text: str) -> Router:
    return Router(parse_policy(policy_text, source="p.yaml"), classifier=FixedScore(0.1),
                  env=provider_env(fake_provider.url), budget_store="redis://127.0.0.1:1/0",
                  global_cap_usd=10.0, health_url=None)


async def test_store_down_fails_closed_by_default(fake_provider):
    fake_provider.script("deepseek-chat", answer("never sent"))
    router = _router_on_dead_redis(fake_provider, "extends: default\nname: closed\n")
    with pytest.raises(BudgetStoreUnavailable) as info:
        await router.acomplete(user_msg("q"))
    assert "fail_closed" in str(info.value) or "unavailable" in str(info.value)
    assert fake_provider.tally["deepseek-chat"].n_requests == 0


async def test_store_down_fail_open_answers_and_says_so(fake_provider):
    fake_provider.script("deepseek-chat", answer("answered unbudgeted"))
    router = _router_on_dead_redis(fake_provider, "extends: default\nname: open\nbudgets: {on_store_unavailable: fail_open}\n")
    resp = await router.acomplete(user_msg("q"))
    assert resp.choices[0].message.content == "answered unbudgeted"
    assert "unbudgeted" in resp.cascade.attempts[-1].reason
