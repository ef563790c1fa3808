"""The server's pure parts, table-driven: keys file, error mapping, trace header, request schema."""
from __future__ import annotations

import json

import pytest

from cascade.server.auth import KeyRing, bearer_token, load_keys
from cascade.server.errors import ApiError, error_reply, retry_after_seconds
from cascade.server.schemas import ChatCompletionRequest, ValidationError, router_params
from cascade.server.wire import MAX_TRACE_HEADER, trace_header
from cascade.trace import AttemptRecord, RouteTrace
from policies.errors import (BudgetExceeded, BudgetStoreUnavailable, ConfigError, EscalationExhausted,
                             InvalidRequestError, ProviderError, ServerError)

KEY_A, KEY_B = "sk-cascade-alice-0123456789", "sk-cascade-bob-9876543210"


# ---- keys file ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"keys:\n  {KEY_A}: alice\n  {KEY_B}: bob\n",
    f"{KEY_A}: alice\n{KEY_B}: bob\n",
    json.dumps({KEY_A: "alice", KEY_B: "bob"}),
    json.dumps({"keys": {KEY_A: "alice", KEY_B: "bob"}}),
])
def test_keys_file_formats(tmp_path, text):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    ring = load_keys(path)
    assert len(ring) == 2 and ring.users == ["alice", "bob"]
    assert ring.user_for(f"Bearer {KEY_A}") == "alice" and ring.user_for(f"bearer  {KEY_B} ") == "bob"
    assert KEY_A not in repr(ring)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", f"Basic {KEY_A}", f"Bearer {KEY_A}x",
                                    f"Bearer {KEY_A[:-1]}", KEY_A])
def test_wrong_or_missing_keys_map_to_no_user(header):
    assert KeyRing({KEY_A: "alice"}).user_for(header) is None


@pytest.mark.parametrize("text, where", [
    ("", "non-empty mapping"),
    ("- a\n- b\n", "non-empty mapping"),
    ("short: alice\n", "at least 8"),
    (f"{KEY_A}: ''\n", "user name"),
    (f"{KEY_A}: [x]\n", "user name"),
    ("keys: {a: [", "not valid YAML"),
])
def test_bad_keys_files_name_the_file_never_the_key(tmp_path, text, where):
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_keys(path)
    assert str(path) in str(info.value) and where in str(info.value)
    assert KEY_A not in str(info.value)


def test_missing_keys_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the keys file"):
        load_keys(tmp_path / "nope.yaml")


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("BEARER  abc ") == "abc"
    assert bearer_token("Token abc") is None and bearer_token(None) is None


# ---- error mapping --------------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, status, code", [
    (BudgetExceeded("cap", scope="global", window="day", retry_after=12.2), 429, "budget_exceeded"),
    (InvalidRequestError("messages[0].role must be one of ..."), 400, "invalid_request"),
    (BudgetStoreUnavailable("redis down"), 503, "budget_store_unavailable"),
    (EscalationExhausted("every attempt failed"), 502, "escalation_exhausted"),
    (ServerError("deepseek-v2: server error (HTTP 500)"), 502, "provider_error"),
    (ProviderError("x"), 502, "provider_error"),
    (ApiError(401, "no key", code="invalid_api_key"), 401, "invalid_api_key"),
    (RuntimeError("secret internals sk-abcdefghijklmnop"), 500, "internal_error"),
])
def test_error_reply_table(exc, status, code):
    reply = error_reply(exc)
    assert reply.status == status and reply.body["error"]["code"] == code
    assert set(reply.body["error"]) == {"message", "type", "param", "code"}
    assert "secret internals" not in reply.content().decode()


def test_error_messages_are_redacted():
    reply = error_reply(ServerError("deepseek-v2: failed with key sk-live-abcdefghijklmnop"))
    assert "sk-live-abcdefghijklmnop" not in reply.content().decode()


@pytest.mark.parametrize("retry_after, header", [(None, 1), (0.0, 1), (0.2, 1), (1.0, 1), (1.01, 2), (3599.5, 3600),
                                                 (float("inf"), 1)])
def test_retry_after_is_whole_seconds_at_least_one(retry_after, header):
    exc = BudgetExceeded("cap", retry_after=retry_after)
    assert retry_after_seconds(exc) == header
    assert error_reply(exc).headers == {"Retry-After": str(header)}


def test_invalid_request_param_is_the_location():
    assert error_reply(InvalidRequestError("messages[2].content[0].type must be ...")).body["error"]["param"] == \
        "messages[2].content[0].type"
    assert error_reply(InvalidRequestError("max_tokens must be a positive integer")).body["error"]["param"] == \
        "max_tokens"


# ---- trace header ---------------------------------------------------------------------------------------

def test_trace_header_is_compact_ascii_and_bounded():
    trace = RouteTrace("r1", "default", 0.2, "text", user="ünïcode", model="deepseek-v2", cost_usd=1e-6,
                       outcome="ok")
    trace.add(AttemptRecord("deepseek-v2", "ok", "reason " * 50))
    doc = json.loads(trace_header(trace))
    assert doc["attempts"] == [["deepseek-v2", "ok"]] and "user" not in doc and "reason" not in trace_header(trace)
    for _ in range(500):
        trace.add(AttemptRecord("some-rather-long-model-alias", "retried"))
    text = trace_header(trace)
    assert len(text) <= MAX_TRACE_HEADER and text.isascii()
    doc = json.loads(text)
    assert doc["more"] == 501 - len(doc["attempts"]) and doc["request_id"] == "r1"


# ---- request schema -------------------------------------------------------------------------------------

def test_router_params_pass_the_usual_parameters_through():
    req = ChatCompletionRequest.model_validate({
        "model": "cascade", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5, "top_p": 0.9,
        "max_tokens": 10, "max_completion_tokens": 11, "stop": ["\n"], "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "seed": 3,
        "user": "u", "store": True, "stream": True, "stream_options": {"include_usage": True}})
    assert router_params(req) == {"temperature": 0.5, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 11,
                                  "stop": ["\n"], "response_format": {"type": "json_object"},
                                  "tools": [{"type": "function", "function": {"name": "f"}}],
                                  "tool_choice": "auto", "seed": 3, "stream": True}
    assert req.include_usage


@pytest.mark.parametrize("patch, param", [
    ({"messages": []}, "messages"), ({"n": 2}, "n"), ({"temperature": -1}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"), ({"frobnicate": 1}, "frobnicate"), ({"stream": "yes"}, "stream"),
])
def test_schema_refusals_name_the_parameter(patch, param):
    from cascade.server.schemas import validation_problem
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate({"model": "cascade", "messages": [{"role": "user", "content": "x"}],
                                              **patch})
    assert validation_problem(info.value)[1] == param


# ---- create_app from settings -----------------------------------------------------------------------------

def test_create_app_from_settings_makes_its_router_in_the_lifespan(tmp_path):
    from fastapi.testclient import TestClient

    from cascade.server.app import ServerSettings, create_app
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({KEY_A: "alice"}))
    app = create_app(ServerSettings(policy="budget-strict", budget_store="memory://", keys_file=str(keys),
                                    global_cap_usd=3.0, cap_window="month"), warm_up=False)
    assert app.state.cascade.router is None
    with TestClient(app) as client:
        router = app.state.cascade.router
        assert router.policy.name == "budget-strict" and router.caps[0].limit_usd == 3.0
        assert client.get("/v1/models").status_code == 401
        ids = [m["id"] for m in client.get("/v1/models", headers={"Authorization": f"Bearer {KEY_A}"}).json()["data"]]
        assert ids == ["cascade", "cascade/budget-strict", "cascade/default", "cascade/quality-first",
                       "cascade/quality-match"]
        assert client.get("/healthz").json()["status"] == "ok"
