"""``model: cascade/<built-in policy>``: each built-in policy answers, over the server's one budget store,
caps, breakers and trace sink; trailing slashes are the same routes."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from policies.loader import BUILTIN_POLICIES
from tests.harness.fake_provider import answer, http_error

from .conftest import ALICE_KEY, API_KEYS, user_msg

ANSWER = "Paris is the capital of France."


def client(served, key: str = "sk-anything-goes") -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0, timeout=30)


@pytest.mark.parametrize("policy", BUILTIN_POLICIES)
def test_every_built_in_policy_answers_and_is_traced_under_its_name(serve, fake_provider, tmp_path, policy):
    fake_provider.script("*", answer(ANSWER, prompt_tokens=10, completion_tokens=7))
    trace_path = tmp_path / "traces.jsonl"
    served = serve(keys=API_KEYS, trace_path=str(trace_path), budget_store=f"sqlite:///{tmp_path}/spend.db")
    resp = client(served, ALICE_KEY).chat.completions.create(model=f"cascade/{policy}",
                                                             messages=user_msg("What is the capital of France?"))
    assert resp.choices[0].message.content == ANSWER
    trace = resp.model_extra["cascade"]
    assert trace["policy"] == policy and trace["user"] == "alice" and trace["cost_usd"] > 0
    [line] = [json.loads(x) for x in trace_path.read_text().splitlines()]     # the server's one trace sink
    assert line["policy"] == policy and line["request_id"] == trace["request_id"]
    store = served.router.store                                                  # the server's one ledger
    assert {e.request_id for e in store.ledger()} == {trace["request_id"]}
    assert store.total_spent(user="alice") == pytest.approx(trace["cost_usd"])


def test_another_policy_cannot_bypass_the_server_caps(serve, fake_provider):
    fake_provider.script("*", answer(ANSWER, prompt_tokens=100, completion_tokens=10_000))   # > the cap
    served = serve(user_cap_usd=0.002)
    c = client(served)
    c.chat.completions.create(model="cascade/quality-first", messages=user_msg("hi"), user="carol", max_tokens=50)
    for model in ("cascade", "cascade/budget-strict", "cascade/quality-first", "cascade/quality-match",
                  "cascade/default"):
        with pytest.raises(openai.RateLimitError) as info:
            c.chat.completions.create(model=model, messages=user_msg("hi"), user="carol", max_tokens=50)
        assert info.value.response.json()["error"]["code"] == "budget_exceeded", model
    c.chat.completions.create(model="cascade/budget-strict", messages=user_msg("hi"), user="dave", max_tokens=50)
    assert set(served.router.store.spend_by_user()) == {"carol", "dave"}


def test_policies_share_the_circuit_breakers(serve, fake_provider):
    fake_provider.script("deepseek-chat", http_error(500))
    fake_provider.script("gpt-4o", answer(ANSWER))
    served = serve()
    c = client(served)
    for _ in range(6):
        c.chat.completions.create(model="cascade/budget-strict", messages=user_msg("hi"))
    assert served.router.health.state("deepseek-v2") != "closed"     # the server's own board saw the failures
    routers = served.app.state.cascade.routers
    for model in routers.model_ids:
        other = routers.get(model)
        assert other.health is served.router.health and other.store is served.router.store
        assert other.sink is served.router.sink and other.gate.spool is served.router.gate.spool


def test_unknown_policy_names_stay_404(serve, fake_provider):
    served = serve()
    for model in ("cascade/nope", "cascade/../default", "budget-strict", "cascade/"):
        with pytest.raises(openai.NotFoundError) as info:
            client(served).chat.completions.create(model=model, messages=user_msg("hi"))
        assert info.value.response.json()["error"]["code"] == "model_not_found"
    assert fake_provider.tally.requests == []


def test_a_trailing_slash_is_the_same_route(serve, fake_provider):
    fake_provider.script("deepseek-chat", answer(ANSWER))
    served = serve()
    body = {"model": "cascade/budget-strict", "messages": user_msg("hi")}
    resp = httpx.post(served.base_url + "/chat/completions/", json=body, timeout=30, follow_redirects=False)
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == ANSWER
    for path in ("/v1/models/", "/healthz/", "/metrics/", "/openapi.json/"):
        resp = httpx.get(served.url + path, timeout=30, follow_redirects=False)
        assert resp.status_code == 200, path
    assert httpx.get(served.url + "/v1/models/").json()["data"][2]["id"] == "cascade/budget-strict"


def test_a_built_in_policy_streams(serve, fake_provider):
    fake_provider.script("*", answer(ANSWER, prompt_tokens=10, completion_tokens=7))
    served = serve()
    chunks = list(client(served).chat.completions.create(model="cascade/quality-first", messages=user_msg("hi"),
                                                         stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[-1].model_extra["cascade"]["policy"] == "quality-first"
