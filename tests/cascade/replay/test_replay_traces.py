"""Replay of Router JSONL traces: the recorded attempts, costs and check outcomes are the outcomes."""
from __future__ import annotations

import pytest

from cascade.replay.run import replay_report, run_replay
from cascade.trace import AttemptRecord, RouteTrace, TraceSink
from policies.checks import CheckOutcome
from policies.errors import ConfigError
from tests.cascade.replay.helpers import TableScorer, write_policy

MAPS = ["cheap=deepseek-v2", "strong=gpt-4o"]


def record(model, status, cost, passed=True):
    checks = [CheckOutcome("non_empty", passed, "" if passed else "empty answer")]
    return AttemptRecord(model, status, "", 1000, 10, cost, 0.1, None, checks)


def write_traces(path, keep_text=False):
    sink = TraceSink(path, keep_text=keep_text)
    rows = [("r1", 0.2, [record("deepseek-v2", "ok", 0.001)], "deepseek-v2", "first answer"),
            ("r2", 0.3, [record("deepseek-v2", "check_failed", 0.001, passed=False), record("gpt-4o", "ok", 0.01)],
             "gpt-4o", "second answer"),
            ("r3", 0.8, [record("gpt-4o", "ok", 0.01)], "gpt-4o", "third answer")]
    for rid, score, attempts, model, answer in rows:
        trace = RouteTrace(rid, "default", score, "text", model=model, outcome="ok", escalated=len(attempts) > 1)
        for a in attempts:
            trace.add(a)
        sink.write(trace, ts=0.0, prompt=f"prompt of {rid}", answer=answer)
    return path


def test_trace_replay_at_the_recorded_thresholds(tmp_path):
    policy = write_policy(tmp_path)
    doc = replay_report(str(policy), traces=write_traces(tmp_path / "t.jsonl"), maps=MAPS)
    op = doc["rows"]["policy"]
    assert doc["data"]["kind"] == "traces" and doc["data"]["split"] == "all"
    assert doc["data"]["scores"] == "recorded in the trace"
    # r1 cheap ok; r2 cheap failed its recorded check -> strong; r3 straight to strong
    assert op["quality"] == pytest.approx(1.0)
    assert op["total_usd"] == pytest.approx(0.001 + 0.011 + 0.01)
    assert op["escalation_rate"] == pytest.approx(1 / 3)
    assert doc["checks"]["evaluated"] == {"non_empty": 4}
    assert doc["data"]["n_paired"] == 1                                   # only r2 called both models


def test_a_new_threshold_calls_models_the_trace_never_called(tmp_path):
    low = write_policy(tmp_path, **{"thresholds: [0.5]": "thresholds: [0.1]"})
    doc = replay_report(str(low), traces=write_traces(tmp_path / "t.jsonl"), maps=MAPS)
    op = doc["rows"]["policy"]
    # everything straight to strong: r1 has no strong outcome -> a failed call, nothing to return
    assert op["missing_outcome_calls"] == 1 and op["failure_rate"] == pytest.approx(1 / 3)
    assert op["quality"] == pytest.approx(2 / 3) and op["total_usd"] == pytest.approx(0.02)
    high = write_policy(tmp_path, name="high.yaml", **{"thresholds: [0.5]": "thresholds: [0.9]"})
    run = run_replay(str(high), traces=tmp_path / "t.jsonl", maps=MAPS)
    # r3 now starts cheap (never called): failed call, escalated to strong which answered
    assert run.engine.escalated.tolist() == [False, True, True]
    assert run.engine.cost_nano.tolist() == [1_000_000, 11_000_000, 10_000_000]


def test_traces_with_text_are_rescored_and_rechecked(tmp_path):
    policy = write_policy(tmp_path, **{"checks: [non_empty]": 'checks: [{name: min_chars, n: 13}]'})
    scores = TableScorer({"prompt of r1": 0.9, "prompt of r2": 0.1, "prompt of r3": 0.1})
    run = run_replay(str(policy), traces=write_traces(tmp_path / "t.jsonl", keep_text=True), maps=MAPS,
                     classifier=scores)
    assert run.score_source == "classifier 'table' (batch)"
    # r1 -> strong: never called, nothing to return; r2 -> cheap: its answer text is not in the trace and
    # min_chars was not recorded: counted as passed (its recorded status check_failed makes quality 0);
    # r3 -> cheap: never called, then strong: "third answer" has 12 < 13 characters -> best answer
    assert run.engine.outcome.tolist() == [2, 0, 1]
    assert run.engine.answered.tolist() == [-1, 0, 1]
    assert run.engine.quality_units.tolist() == [0, 0, 10**9]
    assert run.engine.unevaluated == {"min_chars": 1} and run.engine.evaluated == {"min_chars": 1}


def test_trace_split_needs_text(tmp_path):
    policy = write_policy(tmp_path)
    with pytest.raises(ConfigError, match="needs the prompt text"):
        run_replay(str(policy), traces=write_traces(tmp_path / "t.jsonl"), maps=MAPS, split="test")


def test_malformed_traces(tmp_path):
    policy = write_policy(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"v": 1, "score": 0.1, "attempts": []}\nnot json\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2"):
        run_replay(str(policy), traces=bad, maps=MAPS)
    with pytest.raises(ConfigError, match="no such trace file"):
        run_replay(str(policy), traces=tmp_path / "none.jsonl", maps=MAPS)
    with pytest.raises(ConfigError, match="not both"):
        run_replay(str(policy), [tmp_path], traces=bad, maps=MAPS)
