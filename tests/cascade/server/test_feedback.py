"""POST /v1/feedback: authenticated, scoped to the key's user, stored beside the trace."""
from __future__ import annotations

import json

import httpx
import pytest

from cascade.trace import read_trace_records
from tests.harness.fake_provider import answer

API_KEYS = {"sk-cascade-alice-1111": "alice", "sk-cascade-bob-2222": "bob"}


def ask(served, key: str) -> str:
    resp = httpx.post(served.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "cascade", "messages": [{"role": "user", "content": "Calculate 6 times 7."}]},
                      timeout=60)
    assert resp.status_code == 200, resp.text
    return json.loads(resp.headers["x-cascade-trace"])["request_id"]


def feedback(served, key: str | None, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(served.base_url + "/feedback", headers=headers, json=body, timeout=60)


def test_a_user_labels_their_own_request_only(serve, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("42"))
    served = serve(keys=API_KEYS, trace_path=tmp_path / "traces.jsonl")
    mine = ask(served, "sk-cascade-alice-1111")
    resp = feedback(served, "sk-cascade-alice-1111", {"request_id": mine, "score": 0})
    assert resp.status_code == 200 and resp.json() == {"object": "feedback", "request_id": mine, "score": 0.0}
    other = feedback(served, "sk-cascade-bob-2222", {"request_id": mine, "score": 1})
    unknown = feedback(served, "sk-cascade-bob-2222", {"request_id": "no-such-request", "score": 1})
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"]["code"] == "request_not_found"
    assert feedback(served, None, {"request_id": mine, "score": 1}).status_code == 401
    assert feedback(served, "sk-cascade-alice-1111", {"request_id": mine, "score": 2}).status_code == 400
    assert feedback(served, "sk-cascade-alice-1111", {"request_id": mine, "score": True}).status_code == 400
    lines = [d for d in read_trace_records(tmp_path / "traces.jsonl") if d.get("kind") == "feedback"]
    assert [(d["request_id"], d["user"], d["score"]) for d in lines] == [(mine, "alice", 0.0)]


def test_the_openapi_document_describes_feedback_as_served(serve, fake_provider, tmp_path):
    import jsonschema
    fake_provider.script("deepseek-chat", answer("42"))
    served = serve(keys=API_KEYS, trace_path=tmp_path / "traces.jsonl")
    doc = httpx.get(served.url + "/openapi.json", timeout=10).json()
    op = doc["paths"]["/v1/feedback"]["post"]
    assert op["security"] == [{"bearer": []}] and set(op["responses"]) == {"200", "400", "401", "404", "413"}
    schema = {**doc["components"]["schemas"]["FeedbackRequest"], "components": doc["components"]}
    mine = ask(served, "sk-cascade-alice-1111")
    good, bad = {"request_id": mine, "score": 0.5}, {"request_id": mine, "score": 1.5}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    reply = feedback(served, "sk-cascade-alice-1111", good)
    jsonschema.validate(reply.json(), op["responses"]["200"]["content"]["application/json"]["schema"])
    refused = feedback(served, "sk-cascade-alice-1111", bad)
    assert refused.status_code == 400 and "400" in op["responses"]
