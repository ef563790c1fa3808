"""The fake provider itself, spoken to over raw HTTP (no litellm here)."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest

from tests.harness.fake_provider import (FakeProvider, ModelScript, answer, context_length_exceeded,
                                         drop, empty, http_error, malformed, rate_limited,
                                         scripts_from_json, timeout, truncated, wrong_format)

MESSAGES = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"}]


def chat(server: FakeProvider, model: str = "deepseek-chat", *, path: str = "/v1/chat/completions",
         timeout_s: float = 10.0, **body) -> httpx.Response:
    payload = {"model": model, "messages": MESSAGES, **body}
    return httpx.post(server.base_url + path, json=payload, timeout=timeout_s,
                      headers={"Authorization": "Bearer sk-harness-key"})


def test_default_answer_echoes_and_derives_usage(fake_provider):
    resp = chat(fake_provider)
    assert resp.status_code == 200
    body = resp.json()
    text = body["choices"][0]["message"]["content"]
    assert text == "Answer to: What is the capital of France?"
    chars = len("Be brief.") + len("What is the capital of France?")
    assert body["usage"] == {"prompt_tokens": chars // 4 + 1, "completion_tokens": len(text) // 4 + 1,
                             "total_tokens": chars // 4 + 1 + len(text) // 4 + 1}
    assert body["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_both_paths_served_and_recorded(fake_provider, path):
    assert chat(fake_provider, path=path).status_code == 200
    (record,) = fake_provider.tally.requests
    assert record.path == path
    assert record.authorization == "Bearer sk-harness-key"
    assert json.loads(record.raw_body)["messages"] == MESSAGES


def test_queue_then_default_and_explicit_usage(fake_provider):
    fake_provider.script("m", ModelScript(
        default=answer("Paris", prompt_tokens=100, completion_tokens=7),
        queue=[rate_limited(3), http_error(503)]))
    statuses = [chat(fake_provider, "m").status_code for _ in range(3)]
    assert statuses == [429, 503, 200]
    tally = fake_provider.tally["m"]
    assert tally.n_requests == 3 and tally.n_completions == 1
    assert (tally.prompt_tokens, tally.completion_tokens) == (100, 7)
    assert tally.cost(1e-6, 2e-6) == pytest.approx(100e-6 + 14e-6)
    assert tally.outcomes() == {"http_error:429": 1, "http_error:503": 1, "answer": 1}


def test_content_function_of_messages(fake_provider):
    fake_provider.script("m", answer(lambda msgs: msgs[-1]["content"].upper()))
    assert chat(fake_provider, "m").json()["choices"][0]["message"]["content"] == MESSAGES[-1]["content"].upper()


def test_retry_after_header_only_when_given(fake_provider):
    fake_provider.script("m", ModelScript(queue=[rate_limited(2), rate_limited(None), rate_limited(0.5)]))
    headers = [chat(fake_provider, "m").headers.get("retry-after") for _ in range(3)]
    assert headers == ["2", None, "0.5"]


def test_error_bodies(fake_provider):
    fake_provider.script("m", ModelScript(queue=[context_length_exceeded(), http_error(500, "boom"),
                                                 http_error(401)]))
    ctx = chat(fake_provider, "m")
    assert ctx.status_code == 400 and ctx.json()["error"]["code"] == "context_length_exceeded"
    raw = chat(fake_provider, "m")
    assert (raw.status_code, raw.text) == (500, "boom")
    auth = chat(fake_provider, "m")
    assert auth.status_code == 401 and auth.json()["error"]["type"] == "authentication_error"


def test_answer_variants(fake_provider):
    fake_provider.script("m", ModelScript(queue=[truncated("0123456789"), empty(), wrong_format()]))
    first, second, third = (chat(fake_provider, "m").json()["choices"][0] for _ in range(3))
    assert first["finish_reason"] == "length" and first["message"]["content"] == "01234"
    assert second["message"]["content"] == ""
    assert "France" not in third["message"]["content"]
    assert fake_provider.tally["m"].n_completions == 3


def test_drop_and_malformed(fake_provider):
    fake_provider.script("m", ModelScript(queue=[drop(), malformed()]))
    with pytest.raises(httpx.RemoteProtocolError):
        chat(fake_provider, "m")
    resp = chat(fake_provider, "m")
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.text)
    assert fake_provider.tally["m"].n_completions == 0


def test_timeout_is_cut_by_the_client_and_not_counted(fake_provider):
    fake_provider.script("m", timeout())
    with pytest.raises(httpx.ReadTimeout):
        chat(fake_provider, "m", timeout_s=0.3)
    assert fake_provider.tally["m"].n_requests == 1
    assert fake_provider.tally["m"].n_completions == 0


def _sse_events(text: str) -> list[str]:
    assert text.endswith("data: [DONE]\n\n")
    return [block[len("data: "):] for block in text.split("\n\n") if block]


@pytest.mark.parametrize("include_usage", [True, False])
def test_streaming_sse(fake_provider, include_usage):
    fake_provider.script("m", answer("The capital of France is Paris."))
    resp = chat(fake_provider, "m", stream=True, stream_options={"include_usage": include_usage})
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The capital of France is Paris."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert ("usage" in chunks[-1]) is include_usage
    record = fake_provider.tally["m"].completions[0]
    assert record.stream and record.content == text


def test_stream_drop_midway_is_not_a_completion(fake_provider):
    fake_provider.script("m", drop(after_chunks=2))
    with pytest.raises(httpx.RemoteProtocolError):
        chat(fake_provider, "m", stream=True)
    assert fake_provider.tally["m"].n_completions == 0


def test_seeded_mix_is_reproducible_and_roughly_proportional():
    def outcomes(seed: int) -> list[str]:
        script = ModelScript(mix={"429": 0.2, "500": 0.1, "drop": 0.1}, seed=seed)
        return [f"{b.kind}:{b.status}" for b in (script.next_behaviour() for _ in range(500))]
    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    script = ModelScript(mix={"429": 0.2, "500": 0.1}, seed=1)
    draws = [script.next_behaviour() for _ in range(4000)]
    share_429 = sum(b.status == 429 for b in draws) / len(draws)
    assert 0.17 < share_429 < 0.23
    with pytest.raises(ValueError):
        ModelScript(mix={"429": 0.8, "500": 0.5})
    with pytest.raises(ValueError):
        ModelScript(mix={"no-such-fault": 0.1})


def test_models_endpoint_and_reset(fake_provider):
    fake_provider.script("a", answer("x"))
    fake_provider.script("b", answer("y"))
    ids = [m["id"] for m in httpx.get(fake_provider.url + "/models").json()["data"]]
    assert ids == ["a", "b"]
    chat(fake_provider, "a")
    fake_provider.reset()
    assert fake_provider.tally.n_requests == 0
    assert chat(fake_provider, "a").json()["choices"][0]["message"]["content"].startswith("Answer to:")


def test_json_script_form():
    scripts = scripts_from_json({
        "models": {"deepseek-chat": {
            "default": {"kind": "answer", "rules": [["capital", "Paris"]], "content": "no idea",
                        "latency": [0.0, 0.01]},
            "queue": ["429_retry_after", {"kind": "http_error", "status": 503, "retry_after": 4},
                      {"kind": "truncated", "content": "abcdef"}, {"kind": "timeout", "sleep_s": 2}],
            "mix": {"500": 0.1}, "seed": 3}},
        "fallback": {"default": {"kind": "empty"}}})
    script = scripts["deepseek-chat"]
    queue = [script.next_behaviour() for _ in range(4)]
    assert [(b.kind, b.status, b.retry_after) for b in queue[:2]] == [("http_error", 429, 1),
                                                                      ("http_error", 503, 4)]
    assert (queue[2].kind, queue[2].content, queue[3].sleep_s) == ("truncated", "abcdef", 2)
    assert script.default.content([{"role": "user", "content": "the capital?"}]) == "Paris"
    assert script.default.content([{"role": "user", "content": "hm"}]) == "no idea"
    assert 0.0 <= script.draw_latency(script.default.latency) <= 0.01
    assert scripts["*"].default.kind == "empty"
    with pytest.raises(ValueError):
        scripts_from_json({"models": {"m": {"defualt": {}}}})


def test_fallback_script_serves_unlisted_models(fake_provider):
    fake_provider.script("*", answer("from fallback"))
    fake_provider.script("special", answer("special"))
    assert chat(fake_provider, "anything").json()["choices"][0]["message"]["content"] == "from fallback"
    assert chat(fake_provider, "special").json()["choices"][0]["message"]["content"] == "special"


async def test_800_concurrent_connections(fake_provider):
    fake_provider.script("m", answer("ok", latency=0.3))
    n = 800
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> int:
            async with session.post(fake_provider.url + "/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}) as resp:
                await resp.json()
                return resp.status
        statuses = await asyncio.gather(*(one(i) for i in range(n)))
    assert statuses == [200] * n
    assert fake_provider.tally["m"].n_completions == n


def test_subprocess_mode(spawn_fake_provider):
    proc = spawn_fake_provider({"models": {"m": {"default": {"content": "from subprocess"},
                                                 "queue": [{"kind": "429", "retry_after": 5}]}}})
    first = httpx.post(proc.url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert (first.status_code, first.headers["retry-after"]) == (429, "5")
    second = httpx.post(proc.url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert second.json()["choices"][0]["message"]["content"] == "from subprocess"
    tally = proc.tally()["models"]["m"]
    assert (tally["requests"], tally["completions"]) == (2, 1)
    assert tally["outcomes"] == {"http_error:429": 1, "answer": 1}
    proc.load_scripts({"models": {"m": {"default": {"kind": "503"}}}})
    assert httpx.post(proc.url + "/chat/completions", json={"model": "m", "messages": MESSAGES}).status_code == 503
    full = proc.tally(full=True)
    assert full["requests"][0]["body"]["model"] == "m"
    proc.reset()
    assert proc.tally() == {"models": {}}


def test_request_records_show_content_part_types(fake_provider):
    image = {"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    httpx.post(fake_provider.url + "/chat/completions", json={"model": "vision", "messages": [image]})
    chat(fake_provider, "text-only")
    assert fake_provider.tally["vision"].requests[0].part_types == {"text", "image_url"}
    assert fake_provider.tally["text-only"].requests[0].part_types == {"text"}
    assert fake_provider.tally["vision"].completions[0].prompt_tokens == len("What is in this picture?") // 4 + 1
