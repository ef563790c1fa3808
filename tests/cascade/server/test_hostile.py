"""Issue 11 against a live server (uvicorn on a port, Router on the fake provider): large and slow
requests beside small ones, nested JSON, Retry-After under concurrency, clients that leave, keep-alive
comments, overruns in /metrics. Wall-clock bounds are generous (several times what is measured here,
a fraction of what the defects cost); benchmarks/bench_hostile.py prints the measured figures."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import openai
import pytest

from tests.harness.fake_provider import answer, empty
from tests.harness.scripts import ModelScript

from .conftest import ALICE_KEY, API_KEYS, user_msg

AUTH = {"Authorization": f"Bearer {ALICE_KEY}"}


def chat(served, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(served.base_url + "/chat/completions", json=body, headers=AUTH, timeout=timeout)


def poll_health(served, stop: threading.Event) -> list[float]:
    """Seconds per /healthz answer, polled until ``stop`` is set."""
    seconds = []
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            assert client.get(served.url + "/healthz").status_code == 200
            seconds.append(time.perf_counter() - started)
            time.sleep(0.02)
    return seconds


def test_a_7_mb_prompt_is_refused_at_once_while_healthz_answers(serve, fake_provider):
    """Finding 1: a 7.6 MB one-message prompt was tokenized on the event loop for 6.8 s; /healthz took 6.9 s."""
    served = serve(keys=API_KEYS, user_cap_usd=0.02, cap_window="day", transport="direct")
    prompt = "word " * 1_400_000                         # 7 MB
    stop = threading.Event()
    health: list[float] = []
    poller = threading.Thread(target=lambda: health.extend(poll_health(served, stop)))
    poller.start()
    try:
        time.sleep(0.2)
        started = time.perf_counter()
        resp = chat(served, {"model": "cascade", "messages": user_msg(prompt)})
        refused_in = time.perf_counter() - started
        time.sleep(0.2)
    finally:
        stop.set()
        poller.join()
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "prompt_too_large"
    assert "1,024,000" in resp.json()["error"]["message"] and resp.json()["error"]["param"] == "messages"
    assert fake_provider.tally.requests == [] and served.router.store.ledger() == []
    assert refused_in < 5.0 and len(health) >= 5 and max(health) < 2.0, (refused_in, max(health))


def test_small_requests_keep_their_latency_beside_a_slow_and_two_large_ones(serve, fake_provider):
    """Finding 1: long prompts are tokenized off the event loop (planning pool, GIL released), so a
    slow provider call and two 1 MB prompts that need exact counting stall no one."""
    fake_provider.script("deepseek-chat", ModelScript(default=answer("ok"), queue=[answer("slow", latency=3.0)]))
    served = serve(transport="direct")
    large = "hello world " * 85_000                      # 1.02 M characters, ~170 K tokens: must be counted
    results: dict[str, httpx.Response] = {}

    def send(name: str, text: str) -> None:
        results[name] = httpx.post(served.base_url + "/chat/completions", timeout=120,
                                   json={"model": "cascade", "messages": user_msg(text), "max_tokens": 16})
    slow = threading.Thread(target=send, args=("slow", "take your time"))
    slow.start()
    time.sleep(0.3)
    bigs = [threading.Thread(target=send, args=(f"large{i}", large)) for i in range(2)]
    for t in bigs:
        t.start()
    small = []
    with httpx.Client(timeout=30) as client:
        for _ in range(25):
            started = time.perf_counter()
            resp = client.post(served.base_url + "/chat/completions",
                               json={"model": "cascade", "messages": user_msg("hi"), "max_tokens": 8})
            small.append(time.perf_counter() - started)
            assert resp.status_code == 200
    for t in (slow, *bigs):
        t.join()
    assert results["slow"].status_code == 200
    # too long for any model's window once counted exactly (170 K tokens > 128 K): a 400 naming the fit
    assert {results["large0"].status_code, results["large1"].status_code} == {400}
    assert "context window" in results["large0"].json()["error"]["message"]
    assert max(small) < 1.5, sorted(small)[-5:]       # 3.6 s when tokenized on the event loop


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_4xx_over_http(serve, fake_provider, depth):
    """Finding 2: 1,000-deep ``metadata`` was a 500 with a logged traceback."""
    served = serve(keys=API_KEYS)
    raw = '{"model": "cascade", "messages": [{"role": "user", "content": "x"}], "metadata": ' + \
          "[" * depth + "]" * depth + "}"
    resp = httpx.post(served.base_url + "/chat/completions", content=raw, timeout=30,
                      headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    assert httpx.get(served.url + "/healthz", timeout=10).status_code == 200


def test_refusals_by_reservations_in_flight_get_a_short_retry_after(serve, fake_provider):
    """Finding 3: 300 concurrent requests under a $0.02 user day cap got ``Retry-After: 13917`` though
    only reservations in flight stood in the way."""
    fake_provider.script("deepseek-chat", answer("ok", latency=0.3, prompt_tokens=10, completion_tokens=5))
    served = serve(keys=API_KEYS, user_cap_usd=0.02, cap_window="day", transport="direct")
    body = {"model": "cascade", "messages": user_msg("hi"), "max_tokens": 4000}   # $0.00112 held per request

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
            return await asyncio.gather(*[client.post(served.base_url + "/chat/completions", json=body,
                                                      headers=AUTH) for _ in range(120)])
    responses = asyncio.run(burst())
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) > 20 and all(r.status_code in (200, 429) for r in responses)
    waits = [int(r.headers["retry-after"]) for r in refused]
    assert max(waits) <= 60 and min(waits) >= 1, sorted(set(waits))
    assert all("in flight" in r.json()["error"]["message"] for r in refused)
    time.sleep(max(waits))
    assert chat(served, body).status_code == 200      # the money was there once they settled
    assert served.router.store.total_spent(user="alice") < 0.02


# ---- clients that leave ------------------------------------------------------------------------------------

def _left_early(served, body: dict, wait_s: float = 0.4) -> None:
    with pytest.raises(httpx.TimeoutException):
        httpx.post(served.base_url + "/chat/completions", json=body, headers=AUTH, timeout=wait_s)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_cancels_its_request(serve, fake_provider, stream):
    """Finding 4: a streaming client that left before the first byte was not noticed: the request went
    on, escalated to GPT-4o 3 s later, and the user was billed for it."""
    served = serve(keys=API_KEYS, transport="direct")
    assert chat(served, {"model": "cascade", "messages": user_msg("warm"), "stream": stream}).status_code == 200
    fake_provider.reset()                                              # litellm imported, nothing counted yet
    fake_provider.script("deepseek-chat", empty(latency=1.0))      # would fail its checks: escalation
    fake_provider.script("gpt-4o", answer("the strong answer"))
    spent = served.router.store.total_spent()
    _left_early(served, {"model": "cascade", "messages": user_msg("hi"), "stream": stream})
    time.sleep(2.5)                                                    # past when it would have escalated
    assert [r.model for r in fake_provider.tally.requests] == ["deepseek-chat"]   # GPT-4o never called
    # the call in flight when the client left runs on: what the provider served (and bills) is recorded
    served_cost = sum((c.prompt_tokens * 0.14 + c.completion_tokens * 0.28) / 1e6 for c in fake_provider.tally.completions)
    assert served.router.store.total_spent() - spent == pytest.approx(served_cost, abs=1e-12)
    assert served.router.store.open_reservations() == 0
    metrics = httpx.get(served.url + "/metrics", timeout=10).text
    assert 'outcome="client_closed"' in metrics


def test_a_slow_checked_stream_sends_keepalive_comments(serve, fake_provider):
    """Finding 4: a checked answer is held whole before its first byte (11 s for 40 KB) with no sign of life."""
    fake_provider.script("deepseek-chat", answer("a checked answer", latency=1.2))
    served = serve(keys=API_KEYS, sse_keepalive_s=0.25, transport="direct")
    body = {"model": "cascade", "messages": user_msg("hi"), "stream": True}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body, headers=AUTH, timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in resp.iter_lines() if line]
    comments = [line for line in lines if line.startswith(":")]
    data = [line for line in lines if line.startswith("data: ")]
    assert len(comments) >= 2 and lines[0] == ": keep-alive" and data[-1] == "data: [DONE]"
    assert lines.index(data[0]) > lines.index(comments[-1])          # comments only before the answer
    last = json.loads(data[-2][len("data: "):])
    assert last["cascade"]["outcome"] == "ok"
    client = openai.OpenAI(base_url=served.base_url, api_key=ALICE_KEY, max_retries=0, timeout=30)
    fake_provider.script("deepseek-chat", answer("a checked answer", latency=0.6))
    chunks = list(client.chat.completions.create(model="cascade", messages=user_msg("hi"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a checked answer"


def test_a_failure_after_keepalives_is_an_error_event(serve, fake_provider):
    fake_provider.script("deepseek-chat", empty(latency=0.6))
    fake_provider.script("gpt-4o", empty(latency=0.3))
    policy_raise = "extends: default\nname: strict\nescalation: {on_exhausted: raise}\n"
    from policies.loader import parse_policy
    served = serve(keys=API_KEYS, sse_keepalive_s=0.2, transport="direct",
                   policy=parse_policy(policy_raise, source="strict.yaml"))
    body = {"model": "cascade", "messages": user_msg("hi"), "stream": True}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body, headers=AUTH, timeout=30) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines[0] == ": keep-alive" and "data: [DONE]" not in lines
    assert json.loads(lines[-1][len("data: "):])["error"]["code"] == "escalation_exhausted"
    assert served.router.store.open_reservations() == 0


# ---- overruns and the schema -------------------------------------------------------------------------------

def test_an_overrun_is_flagged_in_the_trace_and_metrics(serve, fake_provider):
    """Finding 5: a provider reported more tokens than were reserved for; the spend is recorded whole."""
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=10, completion_tokens=50_000))
    served = serve(keys=API_KEYS, transport="direct")
    resp = chat(served, {"model": "cascade", "messages": user_msg("hi"), "max_tokens": 16})
    trace = resp.json()["cascade"]
    assert resp.status_code == 200 and trace["overrun_usd"] > 0.0139
    assert "overrun" in trace["attempts"][0]["reason"]
    assert served.router.store.total_spent() == pytest.approx(trace["cost_usd"])
    metrics = httpx.get(served.url + "/metrics", timeout=10).text
    value = [line for line in metrics.splitlines() if line.startswith("cascade_overrun_usd_total")]
    assert value and float(value[0].split()[-1]) == pytest.approx(trace["overrun_usd"])


def test_openapi_json_is_served_without_a_key(serve, fake_provider):
    served = serve(keys=API_KEYS)
    doc = httpx.get(served.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1") and "/v1/chat/completions" in doc["paths"]
    schema = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert schema["properties"]["model"]["enum"] == ["cascade", "cascade/default", "cascade/budget-strict",
                                                     "cascade/quality-first", "cascade/quality-match"]
    assert httpx.get(served.url + "/openapi.json", timeout=10).content == served.app.state.cascade.openapi()
