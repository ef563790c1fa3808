"""The official ``openai`` client against an in-process ``cascade serve`` (uvicorn on a free port, the
Router calling the fake provider over HTTP)."""
from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
import openai
import pytest

from tests.harness.fake_provider import answer, http_error

from .conftest import ALICE_KEY, API_KEYS, BOB_KEY, KEYS, user_msg

ANSWER = "Paris is the capital of France."


def client(served, key: str = "sk-anything-goes", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0, timeout=30, **kw)


def test_plain_completion_has_the_answer_the_trace_and_the_header(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=10, completion_tokens=7))
    served = serve()
    raw = client(served).chat.completions.with_raw_response.create(
        model="cascade", messages=user_msg("What is the capital of France?"), temperature=0.2, max_tokens=50, seed=7)
    resp = raw.parse()
    assert resp.choices[0].message.content == ANSWER
    assert resp.model == "cascade/deepseek-v2" and resp.object == "chat.completion"
    assert resp.usage.prompt_tokens == 10 and resp.usage.completion_tokens == 7
    trace = resp.model_extra["cascade"]
    assert trace["model"] == "deepseek-v2" and trace["outcome"] == "ok" and not trace["escalated"]
    assert trace["cost_usd"] == pytest.approx((10 * 0.14 + 7 * 0.28) / 1e6)
    assert resp.id == f"chatcmpl-{trace['request_id']}"
    header = json.loads(raw.headers["x-cascade-trace"])
    assert header == {"request_id": trace["request_id"], "model": "deepseek-v2", "escalated": False,
                      "cost_usd": trace["cost_usd"], "outcome": "ok", "attempts": [["deepseek-v2", "ok"]]}
    sent = fake_provider.tally.requests[-1].body         # the parameters reached the provider
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 50 and sent["seed"] == 7
    assert served.router.store.total_spent() == pytest.approx(trace["cost_usd"])


def test_policy_model_name_and_escalation(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(""))                  # fails the non_empty check
    fake_provider.script("gpt-4o", answer(ANSWER))
    resp = client(serve()).chat.completions.create(model="cascade/default", messages=user_msg("hi"))
    assert resp.choices[0].message.content == ANSWER and resp.model == "cascade/gpt-4o"
    assert resp.model_extra["cascade"]["escalated"] is True


def test_streaming_assembles_the_answer_and_ends_with_the_trace(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=9, completion_tokens=8))
    served = serve()
    chunks = list(client(served).chat.completions.create(model="cascade", messages=user_msg("capital?"), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert all(c.choices for c in chunks)                 # no usage-only chunk unless asked for
    assert all(c.model == "cascade/deepseek-v2" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    trace = chunks[-1].model_extra["cascade"]
    assert trace["outcome"] == "ok" and trace["cost_usd"] == pytest.approx((9 * 0.14 + 8 * 0.28) / 1e6)
    assert not any("cascade" in (c.model_extra or {}) for c in chunks[:-1])


def test_streaming_wire_format_and_usage_on_request(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=9, completion_tokens=8))
    served = serve()
    body = {"model": "cascade", "messages": user_msg("capital?"), "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", served.base_url + "/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        assert json.loads(resp.headers["x-cascade-trace"])["model"] == "deepseek-v2"   # buffered: complete
        raw = resp.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    last = json.loads(events[-2][len("data: "):])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 8
    assert last["cascade"]["model"] == "deepseek-v2" and last["object"] == "chat.completion.chunk"


async def test_async_client_concurrent_requests_by_key(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=10, completion_tokens=5))
    served = serve(keys=API_KEYS)
    alice = openai.AsyncOpenAI(base_url=served.base_url, api_key=ALICE_KEY, max_retries=0)
    bob = openai.AsyncOpenAI(base_url=served.base_url, api_key=BOB_KEY, max_retries=0)
    calls = [c.chat.completions.create(model="cascade", messages=user_msg(f"q{i}"), user="mallory")
             for i, c in enumerate([alice] * 6 + [bob] * 4)]
    results = await asyncio.gather(*calls)
    assert all(r.choices[0].message.content == ANSWER for r in results)
    assert [r.model_extra["cascade"]["user"] for r in results] == ["alice"] * 6 + ["bob"] * 4   # body user ignored
    by_user = served.router.store.spend_by_user()
    assert set(by_user) == {"alice", "bob"} and by_user["alice"] == pytest.approx(6 * 2.8e-6)
    await alice.close()
    await bob.close()


def test_401_without_or_with_a_wrong_key_and_no_key_echo(serve, fake_provider):
    served = serve(keys=API_KEYS)
    wrong = "sk-cascade-wrong-5555555555"
    for key in ("", wrong):
        c = openai.OpenAI(base_url=served.base_url, api_key="placeholder", max_retries=0,
                          default_headers={"Authorization": f"Bearer {key}" if key else ""})
        with pytest.raises(openai.AuthenticationError) as info:
            c.chat.completions.create(model="cascade", messages=user_msg("hi"))
        assert info.value.status_code == 401
        body = info.value.response.json()
        assert body["error"]["code"] == "invalid_api_key" and set(body["error"]) == {"message", "type", "param", "code"}
        assert wrong not in info.value.response.text
    with pytest.raises(openai.AuthenticationError):
        client(served, wrong).models.list()
    assert fake_provider.tally.requests == []                 # refused before any model call
    assert httpx.get(served.url + "/healthz").status_code == 200    # probes need no key


def test_429_at_the_cap_with_retry_after(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=100, completion_tokens=1000))
    served = serve(global_cap_usd=0.0007, cap_window="day")
    c = client(served)
    for _ in range(2):                                     # each costs ~$0.000294; then the next won't fit
        c.chat.completions.create(model="cascade", messages=user_msg("hi"))
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="cascade", messages=user_msg("hi"))
    err = info.value
    assert err.status_code == 429 and err.response.json()["error"]["code"] == "budget_exceeded"
    retry_after = int(err.response.headers["retry-after"])
    to_midnight = 86400 - time.time() % 86400
    assert 1 <= retry_after and abs(retry_after - math.ceil(to_midnight)) <= 5
    assert served.router.store.total_spent() <= 0.0007


def test_429_for_a_total_cap_has_retry_after_1(serve, fake_provider):
    served = serve(global_cap_usd=0.0)
    with pytest.raises(openai.RateLimitError) as info:
        client(served).chat.completions.create(model="cascade", messages=user_msg("hi"))
    assert info.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize("messages, param", [
    ([], "messages"),
    ([{"role": "bogus", "content": "hi"}], "messages[0].role"),
    ([{"role": "user", "content": 42}], "messages[0].content"),
])
def test_400_for_bad_messages(serve, fake_provider, messages, param):
    with pytest.raises(openai.BadRequestError) as info:
        client(serve()).chat.completions.create(model="cascade", messages=messages)
    error = info.value.response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert "Traceback" not in info.value.response.text


def test_400_for_bad_parameters_and_json(serve, fake_provider):
    served = serve()
    c = client(served)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="cascade", messages=user_msg("hi"), temperature=9)
    assert info.value.response.json()["error"]["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="cascade", messages=user_msg("hi"), extra_body={"telepathy": True})
    assert info.value.response.json()["error"]["code"] == "unsupported_parameter"
    resp = httpx.post(served.base_url + "/chat/completions", content=b"{not json", timeout=10)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


def test_404_for_an_unknown_model(serve, fake_provider):
    with pytest.raises(openai.NotFoundError) as info:
        client(serve()).chat.completions.create(model="gpt-4o", messages=user_msg("hi"))
    error = info.value.response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert fake_provider.tally.requests == []


def test_413_for_a_huge_body(serve, fake_provider):
    served = serve(max_body_bytes=64 * 1024)
    with pytest.raises(openai.APIStatusError) as info:
        client(served).chat.completions.create(model="cascade", messages=user_msg("x" * 100_000))
    assert info.value.status_code == 413 and info.value.response.json()["error"]["code"] == "request_too_large"

    def chunked():                                           # no Content-Length: counted while read
        for _ in range(100):
            yield b" " * 1024
    resp = httpx.post(served.base_url + "/chat/completions", content=chunked(), timeout=10)
    assert resp.status_code == 413
    assert fake_provider.tally.requests == []


def test_502_when_every_model_fails_without_leaking_keys(serve, fake_provider):
    fake_provider.script("deepseek-chat", http_error(401))
    fake_provider.script("gpt-4o", http_error(401))
    with pytest.raises(openai.APIStatusError) as info:
        client(serve()).chat.completions.create(model="cascade", messages=user_msg("hi"))
    assert info.value.status_code == 502
    assert info.value.response.json()["error"]["code"] == "escalation_exhausted"
    header = json.loads(info.value.response.headers["x-cascade-trace"])
    assert header["outcome"] == "error" and [a[1] for a in header["attempts"]] == ["error", "error"]
    assert not any(k in info.value.response.text for k in KEYS.values())


def test_models_endpoint(serve, fake_provider):
    served = serve(keys=API_KEYS)
    ids = [m.id for m in client(served, ALICE_KEY).models.list()]
    assert ids == ["cascade", "cascade/default", "cascade/budget-strict", "cascade/quality-first",
                   "cascade/quality-match"]


def test_healthz_reports_store_and_breakers(serve, fake_provider):
    doc = httpx.get(serve().url + "/healthz").json()
    assert doc["status"] == "ok" and doc["store"]["reachable"] and doc["store"]["url"] == "memory://"
    assert doc["breakers"] == {"deepseek-v2": "closed", "deepseek-coder": "closed", "deepseek-vl2": "closed", "deepseek-ocr-2": "closed",
                               "gpt-4o": "closed"}


def test_healthz_503_and_chat_503_when_the_store_is_down(serve, fake_provider):
    from .conftest import free_port
    served = serve(budget_store=f"redis://127.0.0.1:{free_port()}/0", global_cap_usd=1.0)
    resp = httpx.get(served.url + "/healthz", timeout=30)
    assert resp.status_code == 503 and resp.json()["store"]["reachable"] is False
    with pytest.raises(openai.APIStatusError) as info:
        client(served).chat.completions.create(model="cascade", messages=user_msg("hi"))
    assert info.value.status_code == 503
    assert info.value.response.json()["error"]["code"] == "budget_store_unavailable"


def test_metrics_count_requests_escalations_spend_and_refusals(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER, prompt_tokens=100, completion_tokens=1000))
    served = serve(global_cap_usd=0.0007)
    c = client(served)
    for _ in range(2):
        c.chat.completions.create(model="cascade", messages=user_msg("hi"))
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model="cascade", messages=user_msg("hi"))
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nope", messages=user_msg("hi"))
    text = httpx.get(served.url + "/metrics").text
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['cascade_requests_total{model="deepseek-v2",outcome="ok"}'] == 2
    assert samples['cascade_requests_total{model="none",outcome="budget_exceeded"}'] == 1
    assert samples['cascade_requests_total{model="none",outcome="not_found"}'] == 1
    assert samples['cascade_budget_refusals_total{scope="global",window="total"}'] == 1
    assert samples["cascade_spend_usd_total"] == pytest.approx(served.router.store.total_spent())
    assert samples["cascade_escalations_total"] == 0
    assert samples['cascade_request_duration_seconds_count{stream="false"}'] == 4
    assert samples["cascade_requests_in_flight"] == 0


def test_unknown_routes_and_methods_answer_openai_style(serve, fake_provider):
    served = serve()
    resp = httpx.get(served.base_url + "/completions")
    assert resp.status_code == 404 and set(resp.json()["error"]) == {"message", "type", "param", "code"}
    resp = httpx.get(served.base_url + "/chat/completions")
    assert resp.status_code == 405 and resp.json()["error"]["type"] == "invalid_request_error"
