"""Streaming through ``cascade serve`` in the Router's direct (unchecked) mode: chunks flow as they come,
failures before the first chunk keep their HTTP status, failures after it end the stream with an error
event, and a client that leaves mid-stream leaves no reservation behind."""
from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from cascade.budget import MemoryBudgetStore
from policies.errors import BudgetExceeded
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, drop

from .conftest import user_msg

DIRECT = parse_policy("extends: default\nname: direct\nescalation: {stream_unchecked: true}\n", source="direct.yaml")


def client(served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="sk-unused-here", max_retries=0, timeout=30)


def test_direct_stream_relays_chunks_and_ends_with_the_trace(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("streamed directly to you", prompt_tokens=10, completion_tokens=5))
    served = serve(policy=DIRECT)
    assert [m.id for m in client(served).models.list()][:2] == ["cascade", "cascade/direct"]
    chunks = list(client(served).chat.completions.create(model="cascade/direct", messages=user_msg("hi"),
                                                         stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed directly to you"
    trace = chunks[-1].model_extra["cascade"]
    assert trace["model"] == "deepseek-v2" and trace["outcome"] == "ok"
    assert trace["cost_usd"] == pytest.approx((10 * 0.14 + 5 * 0.28) / 1e6)
    assert served.router.store.total_spent() == pytest.approx(trace["cost_usd"])


def test_direct_stream_header_has_the_request_id(serve, fake_provider):
    served = serve(policy=DIRECT)
    body = {"model": "cascade", "messages": user_msg("hi"), "stream": True}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body, timeout=30) as resp:
        header = json.loads(resp.headers["x-cascade-trace"])
        events = [line for line in resp.iter_lines() if line.startswith("data: ")]
    last = json.loads(events[-2][len("data: "):])
    assert header["request_id"] == last["cascade"]["request_id"] and events[-1] == "data: [DONE]"


class RefusingStore(MemoryBudgetStore):
    """Admits the plan (no caps to look at) but refuses every reservation, as a cap filled by other
    replicas between planning and reserving would."""

    def reserve(self, **kw):
        raise BudgetExceeded("budget exceeded: global total cap $0.01 (spent $0.01)", scope="global",
                             window="total", limit_usd=0.01)


def test_direct_stream_refused_by_budget_is_a_429(serve, fake_provider):
    served = serve(policy=DIRECT, budget_store=RefusingStore())
    with pytest.raises(openai.RateLimitError) as info:
        client(served).chat.completions.create(model="cascade", messages=user_msg("hi"), stream=True)
    assert info.value.response.headers["retry-after"] == "1"
    assert fake_provider.tally.requests == []


def test_mid_stream_failure_ends_with_an_error_event(serve, fake_provider):
    fake_provider.script("deepseek-chat", drop(after_chunks=2).with_(content="a fairly long answer text"))
    served = serve(policy=DIRECT)
    stream = client(served).chat.completions.create(model="cascade", messages=user_msg("hi"), stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert "sk-test" not in str(info.value)
    assert served.router.store.open_reservations() == 0


def test_client_leaving_mid_stream_releases_the_reservation(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("x" * 400_000, prompt_tokens=10, completion_tokens=100_000))
    served = serve(policy=DIRECT)
    body = {"model": "cascade", "messages": user_msg("hi"), "stream": True}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body, timeout=30) as resp:
        first = next(resp.iter_lines())
        assert first.startswith("data: ")
    deadline = time.monotonic() + 10
    while served.router.store.open_reservations() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.router.store.open_reservations() == 0
    assert float(served.app.state.cascade.metrics.in_flight._value.get()) == 0
