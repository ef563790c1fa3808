"""Issue 11, findings 2 and 6, table-driven: every malformed body is a 4xx that names the place and
what was expected; the request schema refuses what the issue found accepted; /openapi.json."""
from __future__ import annotations

import json

import pytest

from cascade.server.body import MAX_DEPTH, parse_json
from cascade.server.errors import ApiError, error_reply
from cascade.server.openapi import openapi_document
from cascade.server.schemas import ChatCompletionRequest, ValidationError, validation_problem
from cascade.trace import AttemptRecord
from policies.errors import EscalationExhausted, PromptTooLarge

MSGS = [{"role": "user", "content": "hi"}]


def body(**fields) -> bytes:
    return json.dumps({"model": "cascade", "messages": MSGS, **fields}).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert 400 <= info.value.status < 500
    return info.value


# ---- parse failures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_not_a_500(depth):
    """Finding 2: ``"metadata": [[[...]]]`` 1,000 deep raised RecursionError out of _parse_json."""
    raw = b'{"model": "cascade", "messages": [], "metadata": ' + nested(depth).encode() + b"}"
    err = refused(raw)
    assert err.status == 400 and err.code == "invalid_json" and f"at most {MAX_DEPTH} levels" in err.message
    if depth < 1_000:                           # parsed, then walked: the place is named
        assert err.param and err.param.startswith("metadata[0][0]")


def test_nesting_up_to_the_limit_parses():
    raw = b'{"model": "cascade", "messages": [], "metadata": ' + nested(MAX_DEPTH - 1).encode() + b"}"
    assert parse_json(raw)["model"] == "cascade"


@pytest.mark.parametrize("raw, param, words", [
    (b'{"model": "cascade", "temperature": NaN}', "temperature", "NaN is not a number JSON allows"),
    (b'{"model": "cascade", "logit_bias": {"50256": Infinity}}', "logit_bias.50256", "Infinity"),
    (b'{"model": "cascade", "logit_bias": {"50256": -Infinity}}', "logit_bias.50256", "-Infinity"),
    (b'{"model": "cascade", "top_p": 1e400}', "top_p", "beyond the range of a 64-bit float"),
    (b'{"model": "cascade", "max_tokens": ' + b"9" * 5_000 + b"}", "max_tokens", "5,000 digits is too large"),
    (b'{"model": "cascade", "messages": [{"role": "user", "content": "x", "n": ' + b"1" * 4_400 + b"}]}",
     "messages[0].n", "4,400 digits"),
])
def test_numbers_json_cannot_carry_are_named(raw, param, words):
    """Finding 6: NaN was refused as "less than or equal to 2", a 5,000-digit max_tokens called invalid_json."""
    err = refused(raw)
    assert err.code == "invalid_value" and err.param == param and words in err.message
    assert param in err.message and "expected a finite number" in err.message


@pytest.mark.parametrize("raw, param", [
    (b'{"model": "cascade", "stop": ["ok", "\\ud800"]}', "stop[1]"),
    (b'{"model": "cascade", "user": "a\\udfffb"}', "user"),
    (b'{"model": "cascade", "logit_bias": {"\\ud83d": 1}}', "logit_bias (a key)"),
    (b'{"model": "cascade", "messages": [{"role": "user", "content": "\\uDC00"}]}', "messages[0].content"),
])
def test_a_lone_surrogate_anywhere_is_refused(raw, param):
    """Finding 6: a lone surrogate in ``stop`` was accepted (and could reach a provider)."""
    err = refused(raw)
    assert err.code == "invalid_value" and err.param == param and "lone surrogate" in err.message


def test_a_surrogate_pair_is_text():
    assert parse_json(b'{"model": "cascade", "stop": ["\\ud83d\\ude00"]}')["stop"] == ["\U0001F600"]


@pytest.mark.parametrize("raw, words", [
    (b"", "could not parse"), (b"{", "could not parse"), (b"[1, 2]", "got a JSON array"),
    (b'"x"', "got a JSON string"), (b"\xff\xfe", "could not parse"),
])
def test_other_malformed_bodies(raw, words):
    err = refused(raw)
    assert err.code == "invalid_json" and words in err.message


# ---- the request schema ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, param, words", [
    ({"user": None}, "user", "valid string"),
    ({"metadata": {"k": 1}}, "metadata.k", "valid string"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16"),
    ({"logit_bias": {"50256": 101}}, "logit_bias.50256", "less than or equal to 100"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "valid string or List should have at most 4 items"),
    ({"max_tokens": 2**31}, "max_tokens", "less than or equal to 2147483647"),
    ({"max_tokens": 13.5}, "max_tokens", "valid integer"),
    ({"tool_choice": {}}, "tool_choice", "Input should be 'none', 'auto' or 'required' or type: Field required"),
    ({"seed": 2**63}, "seed", "less than or equal to"),
])
def test_the_schema_refuses_what_the_issue_found_accepted(fields, param, words):
    with pytest.raises(ValidationError) as info:
        ChatCompletionRequest.model_validate(json.loads(body(**fields)))
    message, got_param, code = validation_problem(info.value)
    assert got_param.startswith(param) and code == "invalid_value" and words in message
    assert message.startswith(f"Invalid value for '{got_param}'")


def test_integral_floats_are_integers():
    req = ChatCompletionRequest.model_validate(json.loads(body(max_tokens=13.0, top_logprobs=2.0, n=1.0)))
    assert (req.max_tokens, req.top_logprobs, req.n) == (13, 2, 1) and isinstance(req.max_tokens, int)


# ---- error mapping ---------------------------------------------------------------------------------------

def test_a_prompt_over_the_limit_is_a_413():
    reply = error_reply(PromptTooLarge("messages hold 9 characters", chars=9, limit=8))
    assert reply.status == 413 and reply.body["error"]["code"] == "prompt_too_large"
    assert reply.body["error"]["param"] == "messages"


def test_an_exhausted_plan_of_bad_requests_is_the_clients_400():
    """Every call refused as a bad request (litellm's own message checks, a provider's 400) is the
    request's fault: 400, not 502 (schemathesis found ``tool_choice: {}`` answered 502)."""
    bad = [AttemptRecord("deepseek-v2", "error", error="BadRequestError: deepseek-v2: bad request (HTTP 400): x"),
           AttemptRecord("gpt-4o", "error", error="BadRequestError: gpt-4o: bad request (HTTP 400): x")]
    assert error_reply(EscalationExhausted("every attempt failed", attempts=bad)).status == 400
    mixed = bad[:1] + [AttemptRecord("gpt-4o", "error", error="ServerError: gpt-4o: server error (HTTP 500)")]
    assert error_reply(EscalationExhausted("every attempt failed", attempts=mixed)).status == 502


# ---- /openapi.json ---------------------------------------------------------------------------------------

def test_openapi_document_describes_the_served_routes():
    doc = json.loads(openapi_document(("cascade", "cascade/default"), with_keys=True, version="1"))
    assert set(doc["paths"]) == {"/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/metrics"}
    request = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert request["properties"]["model"]["enum"] == ["cascade", "cascade/default"]
    assert request["additionalProperties"] is False and "$defs" not in json.dumps(doc)
    assert doc["paths"]["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]
    assert "bearer" in doc["components"]["securitySchemes"]
    open_doc = json.loads(openapi_document(("cascade",), with_keys=False, version="1"))
    assert "securitySchemes" not in open_doc["components"]
