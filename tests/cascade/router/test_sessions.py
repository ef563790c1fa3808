"""Session pinning through the Router: the turn after an escalated turn starts at GPT-4o; other
sessions and session-less requests are not affected; pins are shared through a SQLite store."""
from __future__ import annotations

import pytest

from policies.errors import InvalidRequestError
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, empty
from tests.harness.scripts import ModelScript

from .conftest import user_msg


def escalating_first_turn(fake_provider) -> None:
    fake_provider.script("deepseek-chat", ModelScript(default=answer("a cheap answer"), queue=[empty()]))
    fake_provider.script("gpt-4o", answer("a strong answer"))


async def test_the_turn_after_an_escalated_turn_starts_at_gpt4o(make_router, fake_provider):
    escalating_first_turn(fake_provider)
    router = make_router(score=0.1)
    turn1 = await router.acomplete(user_msg("Plan my trip"), session_id="s-1")
    assert turn1.cascade.model == "gpt-4o" and turn1.cascade.escalated and not turn1.cascade.pinned
    history = [*user_msg("Plan my trip"), {"role": "assistant", "content": "a strong answer"}, *user_msg("And day 2?")]
    turn2 = await router.acomplete(history, session_id="s-1")
    assert [a.model for a in turn2.cascade.attempts] == ["gpt-4o"]
    assert turn2.cascade.pinned and turn2.cascade.session_id == "s-1"
    assert "session pinned to gpt-4o" in turn2.cascade.plan_reason
    assert fake_provider.tally["deepseek-chat"].n_requests == 1
    other = await router.acomplete(user_msg("Unrelated"), session_id="s-2")
    alone = await router.acomplete(user_msg("Unrelated"))
    assert other.cascade.model == alone.cascade.model == "deepseek-v2"
    assert not other.cascade.pinned and alone.cascade.session_id is None


def test_sync_complete_takes_a_session_id(make_router, fake_provider):
    escalating_first_turn(fake_provider)
    router = make_router(score=0.1)
    router.complete(user_msg("turn 1"), session_id="s-1")
    assert router.complete(user_msg("turn 2"), session_id="s-1").cascade.attempts[0].model == "gpt-4o"


async def test_a_session_answered_by_the_cheap_model_stays_cheap_first(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("fine"))
    router = make_router(score=0.1)
    await router.acomplete(user_msg("turn 1"), session_id="s-1")
    turn2 = await router.acomplete(user_msg("turn 2"), session_id="s-1")
    assert turn2.cascade.model == "deepseek-v2" and turn2.cascade.pinned


async def test_a_pin_never_plans_below_the_score(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("fine"))
    fake_provider.script("gpt-4o", answer("strong"))
    await make_router(score=0.1).acomplete(user_msg("turn 1"), session_id="s-1")
    hard = make_router(score=0.9)
    assert (await hard.acomplete(user_msg("turn 2"), session_id="s-1")).cascade.model == "gpt-4o"


async def test_streamed_turns_pin_and_follow_the_pin(make_router, fake_provider):
    escalating_first_turn(fake_provider)
    router = make_router(score=0.1)
    stream = await router.acomplete(user_msg("turn 1"), session_id="s-1", stream=True)
    _ = [c async for c in stream]
    assert stream.cascade.model == "gpt-4o"
    direct = make_router(parse_policy("extends: default\nname: direct\nescalation: {stream_unchecked: true}\n",
                                      source="direct.yaml"), score=0.1)
    assert (await router.acomplete(user_msg("turn 2"), session_id="s-1")).cascade.attempts[0].model == "gpt-4o"
    stream2 = await direct.acomplete(user_msg("turn 2"), session_id="s-9", stream=True)
    _ = [c async for c in stream2]
    turn3 = await direct.acomplete(user_msg("turn 3"), session_id="s-9")
    assert turn3.cascade.pinned and turn3.cascade.model == "deepseek-v2"


async def test_pins_are_shared_through_a_sqlite_store(make_router, fake_provider, tmp_path):
    escalating_first_turn(fake_provider)
    policy = parse_policy(f"extends: default\nname: pinned\nsessions: {{store: 'sqlite:///{tmp_path}/pins.db'}}\n",
                          source="pinned.yaml")
    await make_router(policy, score=0.1).acomplete(user_msg("turn 1"), session_id="s-1")
    turn2 = await make_router(policy, score=0.1).acomplete(user_msg("turn 2"), session_id="s-1")
    assert turn2.cascade.attempts[0].model == "gpt-4o" and turn2.cascade.pinned


async def test_pinning_can_be_turned_off(make_router, fake_provider):
    escalating_first_turn(fake_provider)
    router = make_router(parse_policy("extends: default\nname: unpinned\nsessions: {enabled: false}\n",
                                      source="unpinned.yaml"), score=0.1)
    await router.acomplete(user_msg("turn 1"), session_id="s-1")
    assert (await router.acomplete(user_msg("turn 2"), session_id="s-1")).cascade.model == "deepseek-v2"


@pytest.mark.parametrize("bad", ["", "x" * 257, "tab\there", 42])
async def test_a_bad_session_id_is_refused(make_router, fake_provider, bad):
    with pytest.raises(InvalidRequestError, match="session_id"):
        await make_router(score=0.1).acomplete(user_msg("hi"), session_id=bad)
    assert fake_provider.tally.n_requests == 0


async def test_traces_record_session_and_pin(make_router, fake_provider, tmp_path):
    from cascade.trace import read_traces
    escalating_first_turn(fake_provider)
    router = make_router(score=0.1, trace_path=tmp_path / "s.jsonl")
    await router.acomplete(user_msg("turn 1"), session_id="s-1")
    await router.acomplete(user_msg("turn 2"), session_id="s-1")
    lines = read_traces(tmp_path / "s.jsonl")
    assert [(d["session_id"], d.get("pinned", False)) for d in lines] == [("s-1", False), ("s-1", True)]


async def test_pins_are_shared_through_redis_and_expire_by_redis(make_router, fake_provider, redis_server):
    import redis
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    escalating_first_turn(fake_provider)
    policy = parse_policy(f"extends: default\nname: pinned\nsessions: {{store: '{redis_server.url}', pin_ttl_s: 900}}\n",
                          source="pinned.yaml")
    await make_router(policy, score=0.1).acomplete(user_msg("turn 1"), session_id="s-1")
    [key] = client.keys("cascade:session:v:pin:*")
    assert 0 < client.pttl(key) <= 900_000
    turn2 = await make_router(policy, score=0.1).acomplete(user_msg("turn 2"), session_id="s-1")
    assert turn2.cascade.attempts[0].model == "gpt-4o" and turn2.cascade.pinned
