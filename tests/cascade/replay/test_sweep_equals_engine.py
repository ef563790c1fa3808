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
                    "abc", None, f"plain {i}-{j} " + "because " * int(rng.integers(15, 30))][k]
            responses[j][i] = text
            if text is not None:
                table.setdefault(text, float(rng.choice([rng.random(), 0.25, 0.5, 1.0])))
    scores = rng.choice(np.r_[rng.random(n), [0.4, 0.7, 0.55, 0.0, 1.0] * 10], n, replace=False)
    data = ReplayData(
        kind="outcomes", sources=("mem",), aliases=("cheap", "mid", "strong"),
        mappings=({"cheap": "c", "mid": "m", "strong": "s"},), source=np.zeros(n, np.int16),
        ids=[f"r{i}" for i in range(n)], prompt_tokens=tokens,
        prompts=[f"prompt {i}" + ("\nOptions:\nA. yes\nB. no" if i % 2 else "") for i in range(n)],
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


@pytest.mark.parametrize("on_exhausted", ["best_answer", "raise"])
def test_traced_replay_equals_untraced_and_traces_agree(on_exhausted):
    """With a trace listener the replay builds every RouteTrace; without one it builds none: the
    per-request results are the same, and each trace says what the arrays say."""
    data, scores, checker = make_data(seed=11 + len(on_exhausted))
    policy = make_policy(on_exhausted, 0.02, "downgrade")
    checks = CheckTable(policy, data, answer_checkers={"fake": checker})
    traces: dict = {}
    traced = replay_engine(policy, data, scores, checks, on_trace=traces.__setitem__)
    plain = replay_engine(policy, data, scores, checks)
    for name in ("outcome", "answered", "quality_units", "cost_nano", "calls", "escalated"):
        assert np.array_equal(getattr(traced, name), getattr(plain, name)), name
    assert sorted(traces) == list(range(len(data)))
    names = {0: "ok", 1: "best_answer", 2: "error"}
    assert set(plain.outcome.tolist()) >= {0, 2}
    for i, trace in traces.items():
        assert trace.request_id == data.ids[i]
        assert trace.outcome == names.get(int(plain.outcome[i]), "error")
        assert trace.escalated == bool(plain.escalated[i])
        made = [a for a in trace.attempts if a.status != "second_opinion"]
        assert len(made) == int(plain.calls[i].sum())
        assert round(trace.cost_usd * 1e9) == pytest.approx(int(plain.cost_nano[i]), abs=len(made))


# ---- the whole option space ----------------------------------------------------------------------
# Policies are drawn over every option the walk and the plan depend on: check_last_rung, on_exhausted,
# ladders of 2-4 rungs (some with a small context window), per-rung check overrides, several checks,
# the swept answer_checker or none, 0..n-1 thresholds, a per-request budget with downgrade or reject.

CATALOG = {  # alias: (input $/1M, output $/1M, context window, strength)
    "m1": (1, 2, 100000, 1), "m2": (2, 4, 3000, 3), "m3": (4, 8, 100000, 5), "m4": (10, 20, 100000, 10)}
CHECKS = ["non_empty", "no_refusal", "{name: min_chars, n: 5}", "{name: answer_checker, artifact: fake, threshold: 0.5}",
          "{name: agreement, with: c1, extract: auto}", "{name: agreement, with: c1, extract: choice, parallel: true}",
          "{name: agreement, with: c1, extract: text}"]
AGREEMENTS = [c for c in CHECKS if "agreement" in c]


def _one_agreement(checks: list[str]) -> list[str]:
    """At most one agreement check per rung (the schema's rule)."""
    seen = [c for c in checks if c in AGREEMENTS]
    return [c for c in checks if c not in AGREEMENTS] + seen[:1]


@st.composite
def policies(draw):
    ladder = sorted(draw(st.sets(st.sampled_from(sorted(CATALOG)), min_size=2, max_size=4)))
    thresholds = sorted(draw(st.lists(st.floats(0.05, 0.95), max_size=len(ladder) - 1)))
    shared = _one_agreement(draw(st.lists(st.sampled_from(CHECKS), unique=True, max_size=4)))
    rungs = []
    for model in ladder:
        own = draw(st.none() | st.lists(st.sampled_from(CHECKS), unique=True, max_size=3).map(_one_agreement))
        rungs.append(model if own is None else f"{{model: {model}, checks: [{', '.join(own)}]}}")
    room = draw(st.sampled_from([None, 0.004, 0.012, 0.03]))
    catalog = "\n".join(f"  {a}: {{litellm_model: openai/{a}, price: {{input_per_1m: {i}, output_per_1m: {o}}}, "
                        f"context_window: {c}, max_output_tokens: 1000, capabilities: [text], strength: {s}}}"
                        for a, (i, o, c, s) in CATALOG.items() if a in ladder)
    catalog += ("\n  c1: {litellm_model: openai/c1, price: {input_per_1m: 1, output_per_1m: 2}, context_window: 100000, "
                "max_output_tokens: 1000, capabilities: [text], strength: 2}")
    text = (f"name: drawn\ncatalog:\n{catalog}\n"
            f"routing: {{classifier: heuristic, thresholds: [{', '.join(map(str, thresholds))}], default_max_tokens: 500}}\n"
            f"escalation:\n  ladders:\n    text: [{', '.join(rungs)}]\n  checks: [{', '.join(shared)}]\n"
            f"  on_exhausted: {draw(st.sampled_from(['best_answer', 'raise']))}\n"
            f"  check_last_rung: {str(draw(st.booleans())).lower()}\n"
            f"budgets: {{store: 'memory://', at_cap: {draw(st.sampled_from(['downgrade', 'reject']))}"
            f"{'' if room is None else f', per_request_usd: {room}'}}}\n")
    return parse_policy(text, source="drawn.yaml")


def data_for(policy, seed: int, n: int = 60) -> tuple[ReplayData, np.ndarray, AnswerTable]:
    """``make_data`` widened to the policy's ladder."""
    aliases = tuple(r.model for r in policy.escalation.ladders["text"])
    rng = np.random.default_rng(seed)
    r = len(aliases)
    tokens = rng.integers(10, 4000, n)
    available = rng.random((n, r)) < 0.8
    texts = ["", "I'm sorry, I can't help with that", "abc", None, "The answer is (A).", "The answer is (B).",
             "The answer is (A). " + "x " * 30, "answer"]
    responses = [[texts[k] for k in rng.integers(0, len(texts), n)] for _ in range(r)]
    second = [texts[k] for k in rng.integers(0, len(texts), n)]
    table = {t: float(rng.choice([rng.random(), 0.5, 1.0])) for col in responses for t in col if t is not None}
    scores = rng.choice(np.r_[rng.random(n), [0.0, 0.5, 1.0] * 10], n, replace=False)
    prompts = [f"prompt {i}" + (" A) yes B) no" if i % 3 == 0 else "") + (" Write a Python function." if i % 5 == 0 else "")
               for i in range(n)]
    consult_ok = np.array([t is not None for t in second])
    data = ReplayData(
        consult_aliases=("c1",), consult_available=consult_ok[:, None],
        consult_cost_usd=np.where(consult_ok, rng.random(n) * 0.003, 0.0)[:, None], consult_responses=[second],
        kind="outcomes", sources=("mem",), aliases=aliases, mappings=({a: a for a in aliases},),
        source=np.zeros(n, np.int16), ids=[f"r{i}" for i in range(n)], prompts=prompts,
        prompt_tokens=tokens, plan_tokens=tokens + 4, available=available, missing=~available,
        quality=np.where(available, rng.choice([0.0, 0.5, 1.0], (n, r)), 0.0),
        cost_usd=np.where(available, rng.random((n, r)) * 0.01, 0.0), cost_recorded=available.copy(),
        completion_tokens=rng.integers(1, 600, (n, r)), responses=responses, split="all")
    return data, scores, AnswerTable(table)


@settings(max_examples=60, deadline=None)
@given(policy=policies(), seed=st.integers(0, 2**31), t1=st.floats(0, 1), t2=st.floats(0, 1))
def test_vectorised_equals_engine_over_the_option_space(policy, seed, t1, t2):
    data, scores, checker = data_for(policy, seed)
    from cascade.replay.checks import swept_checker
    t1s = [t1, 0.5] if policy.routing.thresholds else [None]
    t2s = [t2, 0.5] if swept_checker(policy) is not None else [None]
    check_equal(policy, data, scores, checker, t1s, t2s)


@pytest.mark.parametrize("option", ["check_last_rung: false", "on_exhausted: raise"])
def test_replay_reports_engine_equals_vectorised_for(option, tmp_path):
    """``cascade replay`` of the default policy with one escalation option changed: the sweep it
    reports is the engine's (it refuses to report one that is not)."""
    from cascade.replay.run import replay_report
    from tests.cascade.replay.helpers import write_folder
    rng = np.random.default_rng(5)
    prompts = [(f"p{i}", f"Question {i}: what is {i} + {i}?" + " Options: A) 1 B) 2" * (i % 2), 40) for i in range(60)]
    outcomes, responses = [], []
    for i in range(60):
        for model in ("cheap", "strong"):
            if rng.random() < 0.9:                                   # some calls recorded as missing
                outcomes.append((f"p{i}", model, float(rng.random() < 0.6), 50, 0.001))
                responses.append((f"p{i}", model, ["", "The answer is (B).", f"It is {2 * i}.", "I can't help"][i % 4]))
    folder = write_folder(tmp_path / "data", prompts, outcomes, responses)
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: default\nname: changed\nescalation: {{{option}}}\n", encoding="utf-8")
    doc = replay_report(str(path), [folder], split="all", maps={"deepseek-v2": "cheap", "gpt-4o": "strong"})
    assert doc["engine_equals_vectorised"] is True


def test_a_sweep_that_disagrees_with_the_engine_is_refused(monkeypatch):
    from cascade.replay import sweep as sweep_module
    from policies.errors import SweepMismatch
    data, scores, checker = make_data(3)
    policy = make_policy("best_answer", None, "downgrade")
    checks = CheckTable(policy, data, answer_checkers={"fake": checker})
    arrays = decision_arrays(policy, data, scores, checks)
    engine = replay_engine(policy, data, scores, checks)
    sweep_module.check_equal(policy.name, engine, arrays)
    arrays.check_last_rung = False                # the sweep now drops checks the engine ran
    with pytest.raises(SweepMismatch, match="disagrees with the engine"):
        sweep_module.check_equal(policy.name, engine, arrays)
