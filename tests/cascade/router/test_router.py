"""Router.complete()/acomplete() against the local provider over real HTTP, through litellm."""
from __future__ import annotations

import asyncio
import time
import json

import pytest

from cascade.trace import read_traces
from policies.errors import BudgetExceeded, EscalationExhausted, InvalidRequestError
from policies.loader import load_policy, parse_policy
from tests.harness.fake_provider import (answer, context_length_exceeded, empty, http_error, rate_limited,
                                         timeout, truncated)
from tests.harness.scripts import ModelScript

from .conftest import KEYS, user_msg

V2_PRICE = (0.14, 0.28)
GPT4O_PRICE = (2.50, 10.00)


def price(tokens: tuple[int, int], p: tuple[float, float]) -> float:
    return (tokens[0] * p[0] + tokens[1] * p[1]) / 1e6


def ledger_matches(router, resp_or_trace) -> None:
    trace = getattr(resp_or_trace, "cascade", resp_or_trace)
    entries = router.store.ledger(request_id=trace.request_id)
    assert sum(e.cost_usd for e in entries) == pytest.approx(trace.cost_usd, abs=1e-12)


async def test_easy_prompt_answered_by_v2_alone(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("4", prompt_tokens=20, completion_tokens=3))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("What is 2+2?"), user="alice")
    assert resp.choices[0].message.content == "4"
    trace = resp.cascade
    assert trace.model == "deepseek-v2" and not trace.escalated
    assert [a.status for a in trace.attempts] == ["ok"]
    assert trace.cost_usd == pytest.approx(price((20, 3), V2_PRICE), abs=1e-15)
    assert fake_provider.tally["gpt-4o"].n_requests == 0
    ledger_matches(router, resp)


async def test_failed_check_escalates_to_gpt4o(make_router, fake_provider):
    fake_provider.script("deepseek-chat", empty())
    fake_provider.script("gpt-4o", answer("Because sqrt(2)=p/q leads to a contradiction."))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("Prove that sqrt(2) is irrational"))
    trace = resp.cascade
    assert trace.model == "gpt-4o" and trace.escalated
    assert [a.status for a in trace.attempts] == ["check_failed", "ok"]
    assert trace.attempts[0].checks[0].name == "non_empty" and not trace.attempts[0].checks[0].passed
    assert trace.cost_usd == pytest.approx(sum(a.cost_usd for a in trace.attempts))
    assert trace.attempts[0].cost_usd > 0          # the failed cheap answer was still paid for
    ledger_matches(router, resp)


async def test_truncated_answer_escalates(make_router, fake_provider):
    fake_provider.script("deepseek-chat", truncated("a long answer that was cut"))
    fake_provider.script("gpt-4o", answer("complete"))
    resp = await make_router(score=0.1).acomplete(user_msg("Write an essay"))
    assert resp.cascade.model == "gpt-4o"
    assert "truncated" in resp.cascade.attempts[0].reason


async def test_high_score_goes_straight_to_strong(make_router, fake_provider):
    fake_provider.script("gpt-4o", answer("hard answer"))
    resp = await make_router(score=0.9).acomplete(user_msg("Prove Fermat's last theorem"))
    assert resp.cascade.model == "gpt-4o" and not resp.cascade.escalated
    assert fake_provider.tally["deepseek-chat"].n_requests == 0


async def test_429_retried_after_retry_after(make_router, fake_provider):
    fake_provider.script("deepseek-chat", ModelScript(default=answer("ok"), queue=[rate_limited(1.5)]))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("hello"))
    assert resp.cascade.model == "deepseek-v2"
    assert [a.status for a in resp.cascade.attempts] == ["retried", "ok"]
    assert router.services.sleep.calls == [1.5]      # the provider's Retry-After, not our backoff
    assert fake_provider.tally["deepseek-chat"].n_requests == 2


async def test_429_without_retry_after_uses_backoff(make_router, fake_provider):
    fake_provider.script("deepseek-chat", ModelScript(default=answer("ok"), queue=[rate_limited(None)] * 2))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("hello"))
    sleeps = router.services.sleep.calls
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.25
    assert resp.cascade.model == "deepseek-v2"


async def test_dead_cheap_provider_falls_back_and_opens_circuit(make_router, fake_provider):
    fake_provider.script("deepseek-chat", http_error(503))
    fake_provider.script("gpt-4o", answer("from the strong model"))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("hi"))
    assert resp.cascade.model == "gpt-4o"
    statuses = [a.status for a in resp.cascade.attempts]
    assert statuses == ["retried", "retried", "error", "ok"]          # server_error: 3 attempts
    ledger_matches(router, resp)
    for _ in range(2):                                   # 5 consecutive failures open the breaker
        await router.acomplete(user_msg("hi"))
    assert router.health.state("deepseek-v2") == "open"
    before = fake_provider.tally["deepseek-chat"].n_requests
    resp = await router.acomplete(user_msg("hi"))
    assert fake_provider.tally["deepseek-chat"].n_requests == before      # skipped while open
    assert resp.cascade.model == "gpt-4o"
    assert any("circuit open" in s for s in [resp.cascade.plan_reason] + [a.reason for a in resp.cascade.attempts]) \
        or "deepseek-v2" not in [a.model for a in resp.cascade.attempts]


async def test_context_too_long_moves_to_a_bigger_window(make_router, fake_provider):
    fake_provider.script("deepseek-chat", context_length_exceeded())
    fake_provider.script("gpt-4o", answer("fits here"))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("long document ..."))
    assert resp.cascade.model == "gpt-4o"
    assert [a.status for a in resp.cascade.attempts] == ["error", "ok"]      # not retried
    assert "ContextWindowExceeded" in resp.cascade.attempts[0].error
    assert router.health.state("deepseek-v2") == "closed"


async def test_timeout_then_fallback(make_router, fake_provider):
    policy = parse_policy(
        "extends: default\nname: t\nretries: {timeout: {attempts: 1}, attempt_timeout_s: 0.5}\n",
        source=str(load_policy.__module__))
    fake_provider.script("deepseek-chat", timeout(30))
    fake_provider.script("gpt-4o", answer("on time"))
    resp = await make_router(policy, score=0.1).acomplete(user_msg("hi"))
    assert resp.cascade.model == "gpt-4o"
    assert "ProviderTimeout" in resp.cascade.attempts[0].error


async def test_cost_equals_usage_times_price_exactly(make_router, fake_provider):
    fake_provider.script("deepseek-chat", empty(prompt_tokens=1234, completion_tokens=0))
    fake_provider.script("gpt-4o", answer("x", prompt_tokens=1234, completion_tokens=567))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("q"))
    expected = price((1234, 0), V2_PRICE) + price((1234, 567), GPT4O_PRICE)
    assert resp.cascade.cost_usd == pytest.approx(expected, rel=0, abs=1e-15)
    tally = fake_provider.tally
    provider_side = (price((tally["deepseek-chat"].prompt_tokens, tally["deepseek-chat"].completion_tokens), V2_PRICE)
                     + price((tally["gpt-4o"].prompt_tokens, tally["gpt-4o"].completion_tokens), GPT4O_PRICE))
    assert router.store.total_spent() == pytest.approx(provider_side, abs=1e-9)


async def test_budget_cap_downgrades_to_the_cheap_model(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("cheap but within budget"))
    router = make_router(score=0.9, global_cap_usd=0.002)     # GPT-4o's worst case (~$0.01) cannot fit
    resp = await router.acomplete(user_msg("hard question"))
    assert resp.cascade.model == "deepseek-v2"
    assert "downgraded" in resp.cascade.plan_reason
    assert fake_provider.tally["gpt-4o"].n_requests == 0


async def test_budget_cap_rejects_when_policy_says_reject(make_router, fake_provider):
    policy = parse_policy("extends: default\nname: r\nbudgets: {at_cap: reject}\n", source="r.yaml")
    router = make_router(policy, score=0.9, global_cap_usd=0.002)
    with pytest.raises(BudgetExceeded) as info:
        await router.acomplete(user_msg("hard question"))
    assert info.value.scope == "global"
    assert fake_provider.tally["gpt-4o"].n_requests == 0 and fake_provider.tally["deepseek-chat"].n_requests == 0


async def test_spent_cap_raises_budget_exceeded_with_retry_after(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("x" * 400, completion_tokens=1000))
    router = make_router(score=0.1, user_cap_usd=0.0004, cap_window="day")
    await router.acomplete(user_msg("first"), user="bob")
    with pytest.raises(BudgetExceeded) as info:
        await router.acomplete(user_msg("second"), user="bob")
    assert info.value.scope == "user" and info.value.window == "day"
    assert 0 < info.value.retry_after <= 86400
    await router.acomplete(user_msg("other user"), user="carol")      # caps are per user


async def test_images_reach_only_vl2(make_router, fake_provider):
    fake_provider.script("deepseek-vl2", answer("a receipt for $12"))
    router = make_router(score=0.1)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    resp = await router.acomplete([{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}])
    assert resp.cascade.model == "deepseek-vl2"
    with_images = {r.model for r in fake_provider.tally.requests if "image_url" in json.dumps(r.body)}
    assert with_images == {"deepseek-vl2"}
    text_only = await router.acomplete(user_msg("plain text"))
    assert text_only.cascade.model == "deepseek-v2"


async def test_documents_go_to_ocr(make_router, fake_provider):
    fake_provider.script("deepseek-ocr-2", answer("TOTAL 12.00"))
    doc = {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0xLjQ="}}
    resp = await make_router(score=0.1).acomplete([{"role": "user", "content": [doc]}])
    assert resp.cascade.model == "deepseek-ocr-2"


async def test_cancelled_request_releases_its_reservation_and_records_the_late_answer(make_router, fake_provider):
    """Cancelled mid-call (a client gone, a server shutting down): the reservation is released at once,
    and the provider call runs on: the answer it bills is recorded when it arrives."""
    fake_provider.script("deepseek-chat", answer("slow", latency=1.5, prompt_tokens=10, completion_tokens=5))
    router = make_router(score=0.1)
    task = asyncio.create_task(router.acomplete(user_msg("slow one"), user="carol"))
    for _ in range(3000):                          # litellm's import comes first in a fresh process
        await asyncio.sleep(0.01)
        if fake_provider.tally["deepseek-chat"].n_requests == 1:
            break
    assert router.store.open_reservations() == 1   # the call is at the provider, its reservation held
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert router.store.open_reservations() == 0
    assert router.store.total_spent() == 0
    await router.gate.drain()                      # what Router.aclose() waits for
    assert fake_provider.tally["deepseek-chat"].n_completions == 1
    [entry] = router.store.ledger()
    assert entry.user == "carol" and entry.cost_usd == pytest.approx(price((10, 5), V2_PRICE), abs=1e-15)


async def test_on_exhausted_best_answer_and_raise(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("I'm sorry, I can't help with that."))
    fake_provider.script("gpt-4o", http_error(500))
    resp = await make_router(score=0.1).acomplete(user_msg("q"))
    assert resp.cascade.outcome == "best_answer" and resp.cascade.model == "deepseek-v2"
    fake_provider.script("deepseek-chat", empty())          # an empty answer is never the best answer
    with pytest.raises(EscalationExhausted, match="empty answer"):
        await make_router(score=0.1).acomplete(user_msg("q"))
    strict = parse_policy("extends: default\nname: s\nescalation: {on_exhausted: raise}\n", source="s.yaml")
    with pytest.raises(EscalationExhausted) as info:
        await make_router(strict, score=0.1).acomplete(user_msg("q"))
    assert [a.status for a in info.value.attempts][-1] == "error"
    assert "gpt-4o" in str(info.value)


async def test_bad_messages_raise_typed_error_and_touch_nothing(make_router, fake_provider):
    router = make_router()
    with pytest.raises(InvalidRequestError):
        await router.acomplete([{"role": "wizard", "content": "hi"}])
    with pytest.raises(InvalidRequestError):
        await router.acomplete(user_msg("hi"), max_tokens=-5)
    assert fake_provider.tally["deepseek-chat"].n_requests == 0
    assert router.store.ledger() == []


async def test_trace_line_per_request_without_keys(make_router, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", http_error(401))
    fake_provider.script("gpt-4o", answer("ok"))
    router = make_router(score=0.1)
    await router.acomplete(user_msg("hello"), user="dana")
    await router.acomplete(user_msg("again"), user="dana")
    lines = read_traces(tmp_path / "traces.jsonl")
    assert len(lines) == 2 and lines[0]["user"] == "dana" and lines[0]["model"] == "gpt-4o"
    raw = (tmp_path / "traces.jsonl").read_text()
    for key in KEYS.values():
        assert key not in raw
    auth = fake_provider.tally["deepseek-chat"].requests[0].authorization
    assert auth == f"Bearer {KEYS['DEEPSEEK_API_KEY']}"


def test_sync_complete(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("sync ok"))
    resp = make_router(score=0.1).complete(user_msg("hi"))
    assert resp.choices[0].message.content == "sync ok"
    assert resp.cascade.model == "deepseek-v2"


def test_route_is_a_dry_run(make_router, fake_provider):
    routed = make_router(score=0.9).route(user_msg("hi"))
    assert [a.model for a in routed.plan.attempts] == ["gpt-4o"]
    assert fake_provider.tally["gpt-4o"].n_requests == 0


def test_route_describes_a_budget_refusal_instead_of_raising(make_router, fake_provider):
    policy = parse_policy("extends: default\nname: r\nbudgets: {at_cap: reject}\n", source="r.yaml")
    router = make_router(policy, score=0.9, global_cap_usd=0.002, cap_window="day")
    routed = router.route(user_msg("hard question"))
    assert routed.plan.attempts == () and isinstance(routed.refused, BudgetExceeded)
    assert routed.refused.scope == "global" and 0 < routed.refused.retry_after <= 86400
    assert routed.plan.reason == str(routed.refused)
    assert "gpt-4o's worst case" in routed.plan.reason and "deepseek-v2 fits" in routed.plan.reason
    with pytest.raises(BudgetExceeded):                 # the real call still refuses
        router.complete(user_msg("hard question"))
    assert fake_provider.tally["gpt-4o"].n_requests == 0 and fake_provider.tally["deepseek-chat"].n_requests == 0


def test_route_without_a_refusal_has_none(make_router):
    assert make_router(score=0.1).route(user_msg("hi")).refused is None


@pytest.mark.parametrize("n", [200])
async def test_concurrent_requests_never_overspend_a_global_cap(make_router, fake_provider, n):
    fake_provider.script("deepseek-chat", answer("y" * 40, latency=(0.0, 0.02), completion_tokens=100))
    router = make_router(score=0.1, global_cap_usd=0.005)
    results = await asyncio.gather(*(router.acomplete(user_msg(f"q{i}"), max_tokens=200) for i in range(n)),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(ok) + len(refused) == n
    assert router.store.total_spent() <= 0.005 + 1e-12
    assert router.store.open_reservations() == 0
    assert router.store.total_spent() == pytest.approx(sum(r.cascade.cost_usd for r in ok), abs=1e-12)
    assert len(ok) >= 1


async def test_an_answer_arriving_after_our_timeout_is_still_recorded(make_router, fake_provider):
    policy = parse_policy("extends: default\nname: late\nretries: {timeout: {attempts: 1}, attempt_timeout_s: 0.3}\n",
                          source="late.yaml")
    fake_provider.script("deepseek-chat", answer("late but billed", latency=0.6, prompt_tokens=100, completion_tokens=50))
    fake_provider.script("gpt-4o", answer("on time", prompt_tokens=100, completion_tokens=10))
    router = make_router(policy, score=0.1)
    resp = await router.acomplete(user_msg("q"))
    assert resp.cascade.model == "gpt-4o" and "ProviderTimeout" in resp.cascade.attempts[0].error
    await router.gate.drain()
    tally = fake_provider.tally
    assert tally["deepseek-chat"].n_completions == 1          # the provider served (and billed) it
    provider_side = (price((tally["deepseek-chat"].prompt_tokens, tally["deepseek-chat"].completion_tokens), V2_PRICE)
                     + price((tally["gpt-4o"].prompt_tokens, tally["gpt-4o"].completion_tokens), GPT4O_PRICE))
    assert router.store.total_spent() == pytest.approx(provider_side, abs=1e-12)


async def test_litellm_import_is_not_on_the_first_attempts_clock(make_router, fake_provider, monkeypatch):
    """A cold process imports litellm (6-9 s) before the first request is timed: a policy's attempt
    timeout never counts it (the import runs in a worker thread; the event loop keeps serving)."""
    from cascade import providers
    providers.warm_up()          # the real import, done here; the router is then told it is still to do
    loaded, order = [False], []

    def slow_import() -> None:   # runs in a worker thread
        order.append("import")
        time.sleep(1.5)                              # longer than the attempt timeout below
        loaded[0] = True

    monkeypatch.setattr(providers, "is_loaded", lambda: loaded[0])
    monkeypatch.setattr(providers, "warm_up", slow_import)
    policy = parse_policy("extends: default\nname: tight\nretries: {attempt_timeout_s: 1.0}\n")
    router = make_router(policy)
    fake_provider.script("deepseek-chat", answer("The answer is 4."))
    resp = await router.acomplete(user_msg("What is 2+2?"))
    await router.acomplete(user_msg("What is 3+3?"))
    assert order == ["import"]                       # once, before the first request only
    assert [(a.model, a.status) for a in resp.cascade.attempts][0] == ("deepseek-v2", "ok"), resp.cascade.attempts
    assert fake_provider.tally["deepseek-chat"].n_requests == 2
