"""The vectorised sweep is the engine's decision rule: per request, at any thresholds, it gives exactly
what ``decide`` + the replay executor give one request at a time (and its totals are their sums)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cascade.replay.checks import CheckTable
from cascade.replay.data import ReplayData
from cascade.replay.executor import replay_engine
from cascade.replay.sweep import decision_arrays, first_rung, outcomes_at, stat_matrix, sweep, with_thresholds
from policies.loader import parse_policy
from tests.cascade.replay.helpers import AnswerTable

POLICY = """
name: three
catalog:
  cheap: {litellm_model: openai/c, price: {input_per_1m: 1, output_per_1m: 2}, context_window: 100000,
          max_output_tokens: 1000, capabilities: [text], strength: 1}
  mid: {litellm_model: openai/m, price: {input_per_1m: 4, output_per_1m: 8}, context_window: 3000,
        max_output_tokens: 1000, capabilities: [text], strength: 5}
  strong: {litellm_model: openai/s, price: {input_per_1m: 10, output_per_1m: 20}, context_window: 100000,
           max_output_tokens: 1000, capabilities: [text], strength: 10}
routing: {classifier: heuristic, thresholds: [0.4, 0.7], default_max_tokens: 500}
escalation:
  ladders:
    text: [cheap, {model: mid, checks: [{name: min_chars, n: 5}, {name: answer_checker, artifact: fake, threshold: 0.5}]}, strong]
  checks: [non_empty, no_refusal, {name: answer_checker, artifact: fake, threshold: 0.5}]
  on_exhausted: ON_EXHAUSTED
budgets: {store: "memory://", AT_CAP ROOM}
"""
T1 = [0.0, 0.4, 0.55, 0.7, 1.0]
T2 = [0.0, 0.25, 0.5, 1.0]


def make_policy(on_exhausted: str, room: float | None, at_cap: str):
    text = POLICY.replace("ON_EXHAUSTED", on_exhausted).replace("AT_CAP", f"at_cap: {at_cap}")
    return parse_policy(text.replace("ROOM", "" if room is None else f", per_request_usd: {room}"))


def make_data(seed: int, n: int = 160) -> tuple[ReplayData, np.ndarray, AnswerTable]:
    rng = np.random.default_rng(seed)
    r = 3
    tokens = rng.integers(10, 4000, n)
    available = rng.random((n, r)) < 0.85
    kinds = rng.integers(0, 6, (n, r))
    responses: list[list[str | None]] = [[None] * n for _ in range(r)]
    table: dict[str, float] = {}
    for i in range(n):
        for j in range(r):
            k = int(kinds[i, j])
            text = [f"answer {i}-{j} " + "x" * int(rng.integers(0, 9)), "", "I'm sorry, I can't help with that",
                    "abc", None, f"plain {i}-{j}"][k]
            responses[j][i] = text
            if text is not None:
                table.setdefault(text, float(rng.choice([rng.random(), 0.25, 0.5, 1.0])))
    scores = rng.choice(np.r_[rng.random(n), [0.4, 0.7, 0.55, 0.0, 1.0] * 10], n, replace=False)
    data = ReplayData(
        kind="outcomes", sources=("mem",), aliases=("cheap", "mid", "strong"),
        mappings=({"cheap": "c", "mid": "m", "strong": "s"},), source=np.zeros(n, np.int16),
        ids=[f"r{i}" for i in range(n)], prompts=[f"prompt {i}" for i in range(n)], prompt_tokens=tokens,
        plan_tokens=tokens + 4, available=available, missing=~available,
        quality=np.where(available, rng.choice([0.0, 0.5, 1.0, 0.3], (n, r)), 0.0),
        cost_usd=np.where(available, rng.random((n, r)) * 0.01, 0.0), cost_recorded=available.copy(),
        completion_tokens=rng.integers(1, 600, (n, r)), responses=responses, split="all")
    return data, scores, AnswerTable(table)


def check_equal(policy, data, scores, checker, t1_values=T1, t2_values=T2):
    checks = CheckTable(policy, data, answer_checkers={"fake": checker})
    arrays = decision_arrays(policy, data, scores, checks)
    result = sweep(arrays, t1_values, t2_values)
    for j, t2 in enumerate(t2_values):
        for k, t1 in enumerate(t1_values):
            engine = replay_engine(with_thresholds(policy, t1, t2), data, scores, checks)
            vector = outcomes_at(arrays, first_rung(arrays, t1), t2)
            for name in ("outcome", "answered", "quality_units", "cost_nano", "calls", "escalated"):
                assert np.array_equal(getattr(engine, name), getattr(vector, name)), (name, t1, t2)
            assert np.array_equal(result.totals[j, k], stat_matrix(engine).sum(axis=1)), (t1, t2)


@pytest.mark.parametrize("on_exhausted", ["best_answer", "raise"])
@pytest.mark.parametrize("room, at_cap", [(None, "downgrade"), (0.02, "downgrade"), (0.02, "reject"), (0.06, "downgrade")])
def test_vectorised_equals_engine(on_exhausted, room, at_cap):
    data, scores, checker = make_data(seed=len(on_exhausted) + int((room or 0) * 1000) + len(at_cap))
    check_equal(make_policy(on_exhausted, room, at_cap), data, scores, checker)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), on_exhausted=st.sampled_from(["best_answer", "raise"]),
       room=st.sampled_from([None, 0.005, 0.015, 0.03]), at_cap=st.sampled_from(["downgrade", "reject"]),
       t1=st.floats(0, 1), t2=st.floats(0, 1))
def test_vectorised_equals_engine_property(seed, on_exhausted, room, at_cap, t1, t2):
    data, scores, checker = make_data(seed, n=80)
    check_equal(make_policy(on_exhausted, room, at_cap), data, scores, checker, [t1, 0.5], [t2])


def test_policy_operating_point_is_a_grid_point_of_the_default_sweep():
    data, scores, checker = make_data(7)
    policy = make_policy("best_answer", None, "downgrade")
    checks = CheckTable(policy, data, answer_checkers={"fake": checker})
    arrays = decision_arrays(policy, data, scores, checks)
    full = sweep(arrays)
    assert full.totals.shape[:2] == (101, 101)
    engine = replay_engine(policy, data, scores, checks)
    j, k = full.t2.index(0.5), int(np.flatnonzero(full.t1 == 0.4)[0])
    assert np.array_equal(full.totals[j, k], stat_matrix(engine).sum(axis=1))
