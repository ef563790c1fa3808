"""Streaming through the Router: buffered (checked) and direct modes, budgets settled either way."""
from __future__ import annotations

import pytest

from policies.errors import EscalationExhausted, ProviderError
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, drop, empty, http_error
from tests.harness.scripts import ModelScript

from .conftest import user_msg

DIRECT = "extends: default\nname: direct\nescalation: {stream_unchecked: true}\n"


async def collect(stream) -> str:
    parts = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
    return "".join(parts)


async def test_buffered_stream_hides_a_failed_cheap_answer(make_router, fake_provider):
    fake_provider.script("deepseek-chat", empty())
    fake_provider.script("gpt-4o", answer("the strong model's streamed answer"))
    router = make_router(score=0.1)
    stream = await router.acomplete(user_msg("hi"), stream=True)
    assert await collect(stream) == "the strong model's streamed answer"
    assert stream.cascade.model == "gpt-4o" and stream.cascade.escalated
    assert [a.status for a in stream.cascade.attempts] == ["check_failed", "ok"]
    assert all(r.stream for r in fake_provider.tally.requests)
    assert router.store.total_spent() == pytest.approx(stream.cascade.cost_usd, abs=1e-12)


async def test_direct_stream_flows_and_settles_cost(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("streamed directly", prompt_tokens=10, completion_tokens=5))
    router = make_router(parse_policy(DIRECT, source="direct.yaml"), score=0.1)
    stream = await router.acomplete(user_msg("hi"), stream=True)
    assert await collect(stream) == "streamed directly"
    assert stream.cascade.model == "deepseek-v2" and stream.cascade.outcome == "ok"
    assert stream.cascade.cost_usd == pytest.approx((10 * 0.14 + 5 * 0.28) / 1e6, abs=1e-15)
    assert router.store.total_spent() == pytest.approx(stream.cascade.cost_usd, abs=1e-15)


async def test_direct_stream_falls_back_before_the_first_chunk(make_router, fake_provider):
    fake_provider.script("deepseek-chat", http_error(401))
    fake_provider.script("gpt-4o", answer("fallback stream"))
    router = make_router(parse_policy(DIRECT, source="direct.yaml"), score=0.1)
    stream = await router.acomplete(user_msg("hi"), stream=True)
    assert await collect(stream) == "fallback stream"
    assert [a.status for a in stream.cascade.attempts] == ["error", "ok"]


async def test_direct_stream_drop_mid_stream_raises_typed_error_and_releases(make_router, fake_provider):
    fake_provider.script("deepseek-chat", drop(after_chunks=2).with_(content="a fairly long answer text"))
    router = make_router(parse_policy(DIRECT, source="direct.yaml"), score=0.1)
    stream = await router.acomplete(user_msg("hi"), stream=True)
    with pytest.raises(ProviderError):
        await collect(stream)
    assert router.store.open_reservations() == 0


async def test_direct_stream_all_down_raises_exhausted(make_router, fake_provider):
    fake_provider.script("deepseek-chat", http_error(401))
    fake_provider.script("gpt-4o", http_error(401))
    router = make_router(parse_policy(DIRECT, source="direct.yaml"), score=0.1)
    stream = await router.acomplete(user_msg("hi"), stream=True)
    with pytest.raises(EscalationExhausted):
        await collect(stream)
