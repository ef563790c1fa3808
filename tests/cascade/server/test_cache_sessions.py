"""The response cache and session pinning through ``cascade serve`` (uvicorn in a thread, the fake
provider over real HTTP): a hit is a $0 answer no provider saw, a streamed hit a well-formed SSE
stream (vllm-project/semantic-router#913), an error is never replayed as a 200 (#2130), the
``x-session-id`` header pins a session, and /metrics counts the lookups."""
from __future__ import annotations

import json

import httpx
import pytest

from policies.loader import parse_policy
from tests.harness.fake_provider import answer, empty, http_error
from tests.harness.scripts import ModelScript

from .conftest import user_msg

CACHED = parse_policy("extends: default\nname: cached\ncache: {store: 'memory://'}\n", source="cached.yaml")


def post(served, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(served.base_url + "/chat/completions", json={"model": "cascade", **body},
                      headers=headers or {}, timeout=30)


def sse_events(served, body: dict) -> list[str]:
    with httpx.stream("POST", served.base_url + "/chat/completions", timeout=30,
                      json={"model": "cascade", "stream": True, **body}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: "):] for line in resp.iter_lines() if line.startswith("data: ")]


def test_identical_second_request_costs_nothing_and_reaches_no_provider(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=12, completion_tokens=2))
    served = serve(policy=CACHED)
    first = post(served, {"messages": user_msg("Capital of France?"), "temperature": 0}).json()
    second = post(served, {"messages": user_msg("Capital of France?"), "temperature": 0}).json()
    assert first["cascade"]["cost_usd"] > 0 and first["cascade"]["cache"] == "miss"
    assert second["choices"][0]["message"]["content"] == "Paris"
    assert second["cascade"]["cache_hit"] is True and second["cascade"]["cost_usd"] == 0
    assert second["model"] == "cascade/deepseek-v2" and second["id"] != first["id"]
    assert fake_provider.tally.n_requests == 1
    metrics = httpx.get(served.url + "/metrics", timeout=10).text
    assert 'cascade_cache_lookups_total{result="hit"} 1.0' in metrics
    assert 'cascade_cache_lookups_total{result="miss"} 1.0' in metrics
    assert f"cascade_cache_saved_usd_total {first['cascade']['cost_usd']!r}" in metrics


def test_a_streamed_hit_is_a_well_formed_sse_stream(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris is the capital of France"))
    served = serve(policy=CACHED)
    post(served, {"messages": user_msg("Capital?"), "temperature": 0})
    events = sse_events(served, {"messages": user_msg("Capital?"), "temperature": 0,
                                 "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    with_choices = [c for c in chunks if c["choices"]]
    assert with_choices[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in with_choices) == \
        "Paris is the capital of France"
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert chunks[-1]["cascade"]["cache_hit"] is True and fake_provider.tally.n_requests == 1


def test_the_openai_client_reads_a_streamed_hit(serve, fake_provider):
    import openai
    fake_provider.script("deepseek-chat", answer("Paris"))
    served = serve(policy=CACHED)
    client = openai.OpenAI(base_url=served.base_url, api_key="unused", max_retries=0, timeout=30)
    client.chat.completions.create(model="cascade", messages=user_msg("Capital?"), temperature=0)
    chunks = list(client.chat.completions.create(model="cascade", messages=user_msg("Capital?"), temperature=0,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    assert fake_provider.tally.n_requests == 1


@pytest.mark.parametrize("status", [400, 422])
def test_an_error_is_never_replayed_as_a_200(serve, fake_provider, status):
    fake_provider.script("deepseek-chat", http_error(status))
    fake_provider.script("gpt-4o", http_error(status))
    served = serve(policy=CACHED, sleep=_no_sleep)
    codes = [post(served, {"messages": user_msg("Capital?"), "temperature": 0}).status_code for _ in range(2)]
    assert codes[0] == codes[1] and codes[0] >= 400
    calls = fake_provider.tally.n_requests
    assert calls >= 4 and calls % 2 == 0       # the second request reached the providers as the first did
    fake_provider.script("deepseek-chat", answer("Paris"))
    ok = post(served, {"messages": user_msg("Capital?"), "temperature": 0})
    assert ok.status_code == 200 and ok.json()["cascade"]["cache_hit"] is False


async def _no_sleep(seconds: float) -> None:
    return None


def test_the_session_header_pins_the_turn_after_an_escalation(serve, fake_provider):
    fake_provider.script("deepseek-chat", ModelScript(default=answer("cheap"), queue=[empty()]))
    fake_provider.script("gpt-4o", answer("strong"))
    served = serve()
    turn1 = post(served, {"messages": user_msg("turn 1")}, {"x-session-id": "s-1"}).json()
    assert turn1["cascade"]["model"] == "gpt-4o" and turn1["cascade"]["escalated"]
    turn2 = post(served, {"messages": user_msg("turn 2")}, {"x-session-id": "s-1"}).json()
    assert [a["model"] for a in turn2["cascade"]["attempts"]] == ["gpt-4o"]
    assert turn2["cascade"]["pinned"] is True and turn2["cascade"]["session_id"] == "s-1"
    events = sse_events(served, {"messages": user_msg("turn 3")})
    assert json.loads(events[-2])["cascade"]["model"] == "deepseek-v2"      # no header: no pin
    bad = post(served, {"messages": user_msg("x")}, {"x-session-id": "x" * 300})
    assert bad.status_code == 400 and "session_id" in bad.json()["error"]["message"]


SERVE_POLICY = """extends: default
name: cached
routing: {thresholds: [0.999]}
escalation: {checks: [non_empty]}
cache: {store: 'memory://'}
"""
SERVE_SCRIPT = {"models": {"deepseek-chat": {"default": {"kind": "answer", "content": "Paris."},
                                             "queue": [{"kind": "empty"}]},
                           "gpt-4o": {"default": {"kind": "answer", "content": "Paris, from the strong model."}}}}


def test_cascade_serve_subprocess_caches_and_pins(tmp_path, spawn_fake_provider, spawn_serve):
    provider = spawn_fake_provider(SERVE_SCRIPT)
    policy = tmp_path / "cached.yaml"
    policy.write_text(SERVE_POLICY)
    [served] = spawn_serve(provider.url, ["--policy", str(policy), "--budget-store", "memory://"])
    url = served.url + "/v1/chat/completions"

    def ask(text: str, session: str | None = None, **extra) -> dict:
        body = {"model": "cascade", "messages": user_msg(text), **extra}
        resp = httpx.post(url, json=body, headers={"x-session-id": session} if session else {}, timeout=60)
        assert resp.status_code == 200, resp.text
        return resp.json()["cascade"]
    turn1 = ask("Capital of France?", "s-1", temperature=0)          # DeepSeek-V2's empty answer escalates
    assert turn1["model"] == "gpt-4o" and turn1["escalated"]
    turn2 = ask("And of Spain?", "s-1")
    assert [a["model"] for a in turn2["attempts"]] == ["gpt-4o"] and turn2["pinned"]
    calls = sum(m["requests"] for m in provider.tally()["models"].values())
    again = ask("Capital of France?", temperature=0)
    assert again["cache_hit"] and again["cost_usd"] == 0 and again["model"] == "gpt-4o"
    assert sum(m["requests"] for m in provider.tally()["models"].values()) == calls
