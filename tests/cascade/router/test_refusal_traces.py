"""A request refused while planning (a budget cap, a bad request) writes one trace line: outcome
``refused``, the reason, the principal's user name, no prompt unless the sink keeps text, no secret;
``cascade replay --traces`` and ``cascade traces to-parquet`` read such lines (left out of quality, with
a note saying how many)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cascade import Principal
from cascade import commands
from cascade.cli import app
from cascade.trace import read_traces
from policies.errors import BudgetExceeded, InvalidRequestError, PromptTooLarge
from tests.harness.fake_provider import answer

from .conftest import KEYS, user_msg

commands.register(app)


async def _spend_the_cap(router, fake_provider, who):
    """One answer whose reported usage is far over the user's $0.02 day cap: what follows is refused."""
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=10, completion_tokens=100_000))
    await router.acomplete(user_msg("first"), user=who, max_tokens=16)


async def test_a_cap_refusal_while_planning_writes_one_refused_line(make_router, fake_provider, tmp_path):
    router = make_router(user_cap_usd=0.02, cap_window="day")
    alice = Principal("alice", team="ml", key="alice-laptop")
    await _spend_the_cap(router, fake_provider, alice)
    with pytest.raises(BudgetExceeded) as refused:
        await router.acomplete(user_msg("a private question"), user=alice, max_tokens=16)
    lines = read_traces(tmp_path / "traces.jsonl")
    assert [d["outcome"] for d in lines] == ["ok", "refused"]
    line = lines[1]
    assert line["user"] == "alice" and line["attempts"] == [] and line["score"] is None and line["model"] is None
    assert line["error"] == f"BudgetExceeded: {refused.value}" and "user 'alice'" in line["error"]
    assert line["cost_usd"] == 0.0 and line["policy"] == "default" and line["request_id"] != lines[0]["request_id"]
    assert "prompt" not in line and "a private question" not in json.dumps(line)
    assert len(fake_provider.tally.requests) == 1


@pytest.mark.parametrize("params, who, error, user", [
    ({"max_tokens": 0}, "bob", InvalidRequestError, "bob"),
    ({}, 5, InvalidRequestError, None),                       # the user itself is what is wrong
    ({"session_id": ""}, "bob", InvalidRequestError, "bob"),
])
async def test_a_bad_request_writes_a_refused_line_with_its_reason(make_router, fake_provider, tmp_path, params,
                                                                   who, error, user):
    router = make_router(trace_text=True)
    secret = KEYS["DEEPSEEK_API_KEY"]
    with pytest.raises(error) as refused:
        await router.acomplete(user_msg(f"why is {secret} here"), user=who, **params)
    [line] = read_traces(tmp_path / "traces.jsonl")
    assert line["outcome"] == "refused" and line["user"] == user
    assert line["error"] == f"{type(refused.value).__name__}: {refused.value}"
    assert line["prompt"].startswith("why is ") and line["answer"] is None      # the sink keeps text
    assert secret not in (tmp_path / "traces.jsonl").read_text()                # ... never a key
    assert fake_provider.tally.requests == []


async def test_a_prompt_refused_for_its_size_is_not_written_even_by_a_text_sink(make_router, tmp_path):
    router = make_router(trace_text=True, max_prompt_chars=100)
    with pytest.raises(PromptTooLarge):
        await router.acomplete(user_msg("x" * 500), user="carol")
    [line] = read_traces(tmp_path / "traces.jsonl")
    assert line["outcome"] == "refused" and line["error"].startswith("PromptTooLarge") and line["prompt"] is None


async def test_a_streamed_request_refused_while_planning_is_traced_too(make_router, fake_provider, tmp_path):
    router = make_router(user_cap_usd=0.02, cap_window="day")
    await _spend_the_cap(router, fake_provider, "dora")
    with pytest.raises(BudgetExceeded):
        await router.acomplete(user_msg("stream me"), user="dora", stream=True, max_tokens=16)
    assert [(d["outcome"], d["user"]) for d in read_traces(tmp_path / "traces.jsonl")] == [("ok", "dora"),
                                                                                         ("refused", "dora")]


async def test_replay_and_to_parquet_read_refused_lines_and_say_how_many(make_router, fake_provider, tmp_path):
    from cascade.replay.run import run_replay
    router = make_router(user_cap_usd=0.02, cap_window="day")
    await _spend_the_cap(router, fake_provider, "erin")
    for i in range(2):
        with pytest.raises(BudgetExceeded):
            await router.acomplete(user_msg(f"again {i}"), user="erin", max_tokens=16)
    fake_provider.script("deepseek-chat", answer("fine", prompt_tokens=10, completion_tokens=5))
    await router.acomplete(user_msg("someone else"), user="fred", max_tokens=16)
    traces = tmp_path / "traces.jsonl"
    assert [d["outcome"] for d in read_traces(traces)] == ["ok", "refused", "refused", "ok"]
    run = run_replay(router.policy, traces=traces)
    assert len(run.data) == 2 and any(n.startswith("2 refused requests left out") for n in run.data.notes)
    parquet = tmp_path / "traces.parquet"
    result = CliRunner().invoke(app, ["traces", "to-parquet", str(traces), str(parquet)])
    assert result.exit_code == 0, result.output
    report = CliRunner().invoke(app, ["replay", "--policy", "default", "--traces", str(parquet), "--json", "-q"])
    assert report.exit_code == 0, report.output
    doc = json.loads(report.stdout)
    assert doc["rows"]["policy"]["n"] == 2 and any(n.startswith("2 refused requests left out") for n in doc["notes"])
    assert (doc["cache"]["requests"], doc["cache"]["without_digest"]) == (4, 0)
