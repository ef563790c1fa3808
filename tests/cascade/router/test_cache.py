"""The response cache through the Router, against the local provider over real HTTP: a hit costs $0
and reaches no provider; only answers that passed their checks are stored; keys cover everything
that changes an answer; broken stores are bypassed; SQLite and Redis stores are shared."""
from __future__ import annotations

import logging

import pytest

from policies.errors import EscalationExhausted
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, http_error, truncated

from .conftest import user_msg

CACHED = "extends: default\nname: cached\ncache: {store: 'memory://'}\n"


def cached(extra: str = "", **cache: str) -> object:
    fields = ", ".join(f"{k}: {v}" for k, v in {"store": "'memory://'", **cache}.items())
    return parse_policy(f"extends: default\nname: cached\ncache: {{{fields}}}\n{extra}", source="cached.yaml")


async def test_identical_second_request_costs_nothing_and_reaches_no_provider(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=12, completion_tokens=2))
    router = make_router(cached(), score=0.1)
    first = await router.acomplete(user_msg("Capital of France?"), temperature=0)
    spent, calls = router.store.total_spent(), fake_provider.tally.n_requests
    assert first.cascade.cost_usd > 0 and first.cascade.cache == "miss" and not first.cascade.cache_hit
    second = await router.acomplete(user_msg("Capital of France?"), temperature=0)
    assert second.choices[0].message.content == "Paris"
    assert second.cascade.cache_hit and second.cascade.cache == "hit"
    assert second.cascade.cost_usd == 0 and second.cascade.attempts == []
    assert second.cascade.cache_saved_usd == pytest.approx(first.cascade.cost_usd)
    assert second.cascade.cache_source == first.cascade.request_id
    assert second.cascade.model == "deepseek-v2" and second.usage.prompt_tokens == 0
    assert fake_provider.tally.n_requests == calls == 1
    assert router.store.total_spent() == pytest.approx(spent)        # nothing reserved, nothing committed
    assert router.recall.cache.counts["hit"] == 1 and router.recall.cache.counts["stored"] == 1


def test_sync_complete_hits_too(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(cached(), score=0.1)
    router.complete(user_msg("Capital?"), temperature=0)
    assert router.complete(user_msg("Capital?"), temperature=0).cascade.cache_hit
    assert fake_provider.tally.n_requests == 1


async def test_sampled_requests_are_not_cached_unless_the_policy_says_so(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("a poem"))
    router = make_router(cached(), score=0.1)
    for params in ({}, {"temperature": 0.7}):
        for _ in range(2):
            got = await router.acomplete(user_msg("Write a poem"), **params)
            assert not got.cascade.cache_hit and got.cascade.cache == "uncacheable"
    assert fake_provider.tally.n_requests == 4
    assert router.recall.cache.keys_for(user_msg("x"), {"temperature": 0, "n": 2}, None) is None
    router2 = make_router(cached(temperature_any="true"), score=0.1)
    await router2.acomplete(user_msg("Write a poem"))
    assert (await router2.acomplete(user_msg("Write a poem"))).cascade.cache_hit


VARIANTS = [
    ("system prompt", {"messages": [{"role": "system", "content": "Answer in French."}, *user_msg("Capital?")]}),
    ("tools", {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]}),
    ("tool_choice", {"tool_choice": "none"}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    ("top_p", {"top_p": 0.5}), ("max_tokens", {"max_tokens": 50}), ("seed", {"seed": 7}), ("stop", {"stop": ["\n"]}),
    ("user", {"user": "bob"}),
    ("earlier turn", {"messages": [*user_msg("hi"), {"role": "assistant", "content": "hello"}, *user_msg("Capital?")]}),
]


@pytest.mark.parametrize("what,change", VARIANTS, ids=[v[0] for v in VARIANTS])
async def test_a_request_that_differs_in_anything_answer_changing_misses(make_router, fake_provider, what, change):
    fake_provider.script("deepseek-chat", answer('{"capital": "Paris"}'))
    router = make_router(cached(), score=0.1)
    await router.acomplete(user_msg("Capital?"), user="alice", temperature=0)
    change = dict(change)
    messages = change.pop("messages", user_msg("Capital?"))
    user = change.pop("user", "alice")
    got = await router.acomplete(messages, user=user, temperature=0, **change)
    assert not got.cascade.cache_hit and got.cascade.cache == "miss", what
    assert fake_provider.tally.n_requests == 2


async def test_global_scope_shares_answers_between_users(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(cached(scope="global"), score=0.1)
    await router.acomplete(user_msg("Capital?"), user="alice", temperature=0)
    assert (await router.acomplete(user_msg("Capital?"), user="bob", temperature=0)).cascade.cache_hit


async def test_a_changed_policy_misses(make_router, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris"))
    url = f"'sqlite:///{tmp_path}/cache.db'"
    a = make_router(cached(store=url), score=0.1)
    await a.acomplete(user_msg("Capital?"), temperature=0)
    same = make_router(cached(store=url), score=0.1)
    assert (await same.acomplete(user_msg("Capital?"), temperature=0)).cascade.cache_hit
    changed = make_router(cached("routing: {default_max_tokens: 512}\n", store=url), score=0.1)
    assert not (await changed.acomplete(user_msg("Capital?"), temperature=0)).cascade.cache_hit


async def test_an_escalated_answer_that_passed_is_stored(make_router, fake_provider):
    fake_provider.script("deepseek-chat", truncated("cut"))
    fake_provider.script("gpt-4o", answer("complete answer"))
    router = make_router(cached(), score=0.1)
    first = await router.acomplete(user_msg("Essay"), temperature=0)
    assert first.cascade.model == "gpt-4o" and first.cascade.escalated
    second = await router.acomplete(user_msg("Essay"), temperature=0)
    assert second.cascade.cache_hit and second.choices[0].message.content == "complete answer"
    assert second.cascade.model == "gpt-4o" and fake_provider.tally.n_requests == 2


async def test_answers_that_failed_their_checks_or_were_truncated_are_never_stored(make_router, fake_provider):
    fake_provider.script("deepseek-chat", truncated("cut short"))
    fake_provider.script("gpt-4o", truncated("also cut short"))
    router = make_router(cached(), score=0.1)
    for _ in range(2):
        got = await router.acomplete(user_msg("Essay"), temperature=0)
        assert got.cascade.outcome == "best_answer" and not got.cascade.cache_hit
    assert fake_provider.tally.n_requests == 4 and router.recall.cache.counts["stored"] == 0


async def test_errors_are_never_stored(make_router, fake_provider):
    fake_provider.script("deepseek-chat", http_error(400))
    fake_provider.script("gpt-4o", http_error(400))
    router = make_router(cached(), score=0.1)
    for _ in range(2):
        with pytest.raises(EscalationExhausted):
            await router.acomplete(user_msg("Capital?"), temperature=0)
    assert fake_provider.tally.n_requests == 4 and router.recall.cache.counts["stored"] == 0


async def test_a_streamed_hit_is_a_well_formed_stream(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris is the capital"))
    router = make_router(cached(), score=0.1)
    await router.acomplete(user_msg("Capital?"), temperature=0)
    stream = await router.acomplete(user_msg("Capital?"), temperature=0, stream=True)
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Paris is the capital"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert stream.cascade.cache_hit and stream.cascade.cost_usd == 0 and fake_provider.tally.n_requests == 1


async def test_a_checked_streamed_answer_is_stored(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("streamed and checked"))
    router = make_router(cached(), score=0.1)
    stream = await router.acomplete(user_msg("Q?"), temperature=0, stream=True)
    _ = [c async for c in stream]
    again = await router.acomplete(user_msg("Q?"), temperature=0)
    assert again.cascade.cache_hit and again.choices[0].message.content == "streamed and checked"


async def test_a_broken_store_is_bypassed_counted_and_logged_once(make_router, fake_provider, caplog):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(cached(store="'redis://127.0.0.1:1/0'"), score=0.1)
    with caplog.at_level(logging.ERROR, logger="cascade.cache"):
        for _ in range(3):
            got = await router.acomplete(user_msg("Capital?"), temperature=0)
            assert got.choices[0].message.content == "Paris" and got.cascade.cache == "error"
    assert fake_provider.tally.n_requests == 3
    assert router.recall.cache.counts["errors"] == 3
    assert len([r for r in caplog.records if r.name == "cascade.cache"]) == 1


async def test_sqlite_store_is_shared_by_two_routers(make_router, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris"))
    url = f"'sqlite:///{tmp_path}/shared-cache.db'"
    await make_router(cached(store=url), score=0.1).acomplete(user_msg("Capital?"), temperature=0)
    got = await make_router(cached(store=url), score=0.1).acomplete(user_msg("Capital?"), temperature=0)
    assert got.cascade.cache_hit and fake_provider.tally.n_requests == 1


async def test_redis_store_is_shared_and_expires_by_redis(make_router, fake_provider, redis_server):
    import redis
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    fake_provider.script("deepseek-chat", answer("Paris"))
    url = f"'{redis_server.url}'"
    await make_router(cached(store=url, ttl_s="120"), score=0.1).acomplete(user_msg("Capital?"), temperature=0)
    keys = client.keys("cascade:cache:v:*")
    assert len(keys) == 1 and 0 < client.pttl(keys[0]) <= 120_000
    got = await make_router(cached(store=url, ttl_s="120"), score=0.1).acomplete(user_msg("Capital?"), temperature=0)
    assert got.cascade.cache_hit and fake_provider.tally.n_requests == 1
    client.flushdb()
    assert not (await make_router(cached(store=url), score=0.1).acomplete(user_msg("Capital?"),
                                                                          temperature=0)).cascade.cache_hit


async def test_no_cache_by_default(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(score=0.1)
    for _ in range(2):
        got = await router.acomplete(user_msg("Capital?"), temperature=0)
        assert got.cascade.cache is None and not got.cascade.cache_hit
    assert router.recall.cache is None and fake_provider.tally.n_requests == 2


async def test_hits_are_written_to_the_trace_file(make_router, fake_provider, tmp_path):
    from cascade.trace import read_traces
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(cached(), score=0.1, trace_path=tmp_path / "t.jsonl")
    for _ in range(2):
        await router.acomplete(user_msg("Capital?"), temperature=0)
    lines = read_traces(tmp_path / "t.jsonl")
    assert [line.get("cache_hit", False) for line in lines] == [False, True]
    assert lines[0]["request_digest"] == lines[1]["request_digest"] and lines[1]["cost_usd"] == 0


@pytest.mark.parametrize("messages", [object(), "hi", [{"role": "user", "content": {1: "a", "b": 2}}],
                                      [{"role": "user", "content": "\ud800"}], []])
async def test_malformed_requests_to_a_cached_router_get_the_planners_typed_error(make_router, fake_provider,
                                                                                  messages):
    from policies.errors import CascadeError
    router = make_router(cached(), score=0.1)
    with pytest.raises(CascadeError):
        await router.acomplete(messages, temperature=0)
    assert fake_provider.tally.n_requests == 0


async def test_a_user_over_the_cap_is_served_a_hit_and_refused_anything_new(make_router, fake_provider, tmp_path):
    """A hit spends nothing, so a cap does not refuse it; a new question is refused and traced as such."""
    from cascade import Principal
    from cascade.trace import read_traces
    from policies.errors import BudgetExceeded
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=10, completion_tokens=100_000))
    router = make_router(cached(), team_cap_usd=0.02, cap_window="day")
    alice = Principal("alice", team="ml")
    await router.acomplete(user_msg("Capital of France?"), user=alice, temperature=0, max_tokens=16)
    spent = router.store.total_spent()
    with pytest.raises(BudgetExceeded, match="team 'ml'"):
        await router.acomplete(user_msg("Capital of Spain?"), user=alice, temperature=0, max_tokens=16)
    hit = await router.acomplete(user_msg("Capital of France?"), user=alice, temperature=0, max_tokens=16)
    assert hit.cascade.cache_hit and hit.cascade.cost_usd == 0 and router.store.total_spent() == spent
    assert len(fake_provider.tally.requests) == 1
    assert [d["outcome"] for d in read_traces(tmp_path / "traces.jsonl")] == ["ok", "refused", "ok"]
