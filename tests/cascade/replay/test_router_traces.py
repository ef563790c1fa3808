"""The trace is the replay log: what the live Router does (against the fake provider) is what replaying
its trace with the same policy reproduces — same answering model, same cost, same escalations."""
from __future__ import annotations

import json

import numpy as np

from cascade.replay.run import run_replay
from tests.cascade.replay.helpers import TableScorer

PROMPTS = {"easy one": 0.1, "hard two": 0.2, "easy three": 0.9, "hard four": 0.3, "easy five": 0.45}


def provider_env(url: str) -> dict[str, str]:
    env = {"DEEPSEEK_API_KEY": "sk-test-deepseek", "OPENAI_API_KEY": "sk-test-openai"}
    for var in ("DEEPSEEK_API_BASE", "OPENAI_API_BASE", "DEEPSEEK_VL2_API_BASE", "DEEPSEEK_OCR_API_BASE"):
        env[var] = url
    return env


def test_replaying_router_traces_reproduces_the_live_run(fake_provider, tmp_path):
    from cascade.router import Router
    from tests.harness.scripts import answer

    def cheap(messages):              # the cheap model returns nothing on "hard" prompts: non_empty fails
        return "" if "hard" in messages[-1]["content"] else "a fine answer"
    fake_provider.script("deepseek-chat", answer(cheap, completion_tokens=7))
    fake_provider.script("gpt-4o", answer("a strong answer", completion_tokens=11))
    traces = tmp_path / "traces.jsonl"
    scorer = TableScorer(PROMPTS)
    policy = tmp_path / "pinned.yaml"          # the default catalog, thresholds and rule checks pinned
    policy.write_text("extends: default\nname: default\nrouting: {thresholds: [0.5]}\n"
                      "escalation: {checks: [non_empty, not_truncated, no_refusal]}\n")
    router = Router(str(policy), classifier=scorer, budget_store="memory://", trace_path=traces, trace_text=True,
                    env=provider_env(fake_provider.url), seed=0)
    try:
        for prompt in PROMPTS:
            router.complete([{"role": "user", "content": prompt}])
    finally:
        router.close()
    live = [json.loads(line) for line in traces.read_text().splitlines()]
    assert [t["escalated"] for t in live] == [False, True, False, True, False]

    run = run_replay(str(policy), traces=traces, classifier=scorer)
    aliases = run.data.aliases
    assert [aliases[r] for r in run.engine.answered] == [t["model"] for t in live]
    assert run.engine.escalated.tolist() == [t["escalated"] for t in live]
    assert np.allclose(run.engine.cost_nano / 1e9, [t["cost_usd"] for t in live], rtol=0, atol=1e-9)
    assert run.engine.quality_units.tolist() == [10**9] * len(live)     # every returned answer passed its checks
    # the returned answers are re-checked on their text; the escalated cheap answers (text not kept) use
    # the check outcomes recorded in the trace: nothing is left unevaluated
    assert run.engine.evaluated == {"non_empty": 7, "not_truncated": 7, "no_refusal": 7}
    assert not run.engine.unevaluated and run.engine.missing_calls == 0


def test_replaying_traces_honours_session_pins(fake_provider, tmp_path):
    """A session's turn after an escalated turn started at GPT-4o live; replay plans it the same way
    (without the pin it would plan DeepSeek-V2 first, which the trace never called for that turn)."""
    from cascade.router import Router
    from tests.harness.scripts import ModelScript, answer, empty

    fake_provider.script("deepseek-chat", ModelScript(default=answer("cheap", completion_tokens=7), queue=[empty()]))
    fake_provider.script("gpt-4o", answer("a strong answer", completion_tokens=11))
    traces = tmp_path / "traces.jsonl"
    scorer = TableScorer({"turn one": 0.1, "turn two": 0.1, "other": 0.1})
    policy = tmp_path / "pinned.yaml"
    policy.write_text("extends: default\nname: default\nrouting: {thresholds: [0.5]}\n"
                      "escalation: {checks: [non_empty, not_truncated, no_refusal]}\n")
    router = Router(str(policy), classifier=scorer, budget_store="memory://", trace_path=traces, trace_text=True,
                    env=provider_env(fake_provider.url), seed=0)
    try:
        router.complete([{"role": "user", "content": "turn one"}], session_id="s-1")
        router.complete([{"role": "user", "content": "turn two"}], session_id="s-1")
        router.complete([{"role": "user", "content": "other"}])
    finally:
        router.close()
    live = [json.loads(line) for line in traces.read_text().splitlines()]
    assert [(t["model"], t["escalated"], t.get("pinned", False)) for t in live] == \
        [("gpt-4o", True, False), ("gpt-4o", False, True), ("deepseek-v2", False, False)]
    run = run_replay(str(policy), traces=traces, classifier=scorer)
    aliases = run.data.aliases
    assert [aliases[r] for r in run.engine.answered] == [t["model"] for t in live]
    assert run.engine.escalated.tolist() == [t["escalated"] for t in live]
    assert np.allclose(run.engine.cost_nano / 1e9, [t["cost_usd"] for t in live], rtol=0, atol=1e-9)
    parts = run_replay(str(policy), traces=traces, classifier=scorer, chunk_rows=2)   # the session in one partition
    assert parts.engine.escalated.tolist() == run.engine.escalated.tolist()
    assert parts.engine.cost_nano.tolist() == run.engine.cost_nano.tolist()
    unpinned = tmp_path / "unpinned.yaml"
    unpinned.write_text(policy.read_text() + "sessions: {enabled: false}\n")
    assert run_replay(str(unpinned), traces=traces, classifier=scorer).engine.escalated.tolist() == [True, True, False]
