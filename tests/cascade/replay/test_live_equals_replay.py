"""Live and replay stay equal with a second opinion: the Router, answering through a transport that
returns the recorded answers (and their token counts), makes the same decision at the same cost as the
replay of the same recorded outcomes, request by request."""
from __future__ import annotations

import numpy as np
import pytest

from cascade.replay.executor import FAILED
from cascade.replay.run import run_replay
from cascade.router import Router
from cascade.transport import MockTransport
from tests.cascade.replay.helpers import write_folder
from policies.errors import EscalationExhausted
from tests.cascade.router.conftest import FixedScore

MODELS = {"deepseek-v2": "V2", "gpt-4o": "G4", "deepseek-coder": "C2"}


def recorded(n: int = 48, seed: int = 11):
    rng = np.random.default_rng(seed)
    prompts, outcomes, responses, answers = [], [], [], {}
    for i in range(n):
        kind = i % 4
        if kind == 3:
            text = f"Write a Python function number {i} that reverses a list."
        elif kind == 2:
            text = f"How many apples are left if you have {i + 5} and eat 3?"
        else:
            text = f"Question {i}: which letter?\nOptions:\nA. one\nB. two\nC. three"
        key = "ABC"[i % 3]
        prompts.append((f"p{i}", text, 30 + i))
        for alias, model in MODELS.items():
            if kind == 2:
                said = f"So the answer is {i + 2 if rng.random() < 0.7 else i}."
            elif kind == 3:
                said = "def f(x):\n    return x[::-1]"
            else:
                said = rng.choice([f"The answer is ({key}).", "The answer is (A).", "I am not sure.", ""])
            ct = int(rng.integers(5, 400))
            outcomes.append((f"p{i}", model, float(key in said or kind >= 2), ct, None))
            responses.append((f"p{i}", model, said))
            answers[(alias, text)] = (said, 30 + i, ct)
    return prompts, outcomes, responses, answers


@pytest.mark.parametrize("parallel", [False, True])
async def test_router_and_replay_agree_request_by_request(tmp_path, parallel):
    prompts, outcomes, responses, answers = recorded()
    folder = write_folder(tmp_path / "data", prompts, outcomes, responses)
    policy = tmp_path / "match.yaml"
    policy.write_text("extends: quality-match\nname: match\nescalation:\n  checks: [non_empty, no_refusal, "
                      f"{{name: agreement, with: deepseek-coder, extract: auto, parallel: {str(parallel).lower()}}}]\n")
    run = run_replay(str(policy), [folder], maps=MODELS, split="all", classifier=FixedScore(0.0))

    def handler(call):
        text, pt, ct = answers[(call.model_alias, call.messages[-1]["content"])]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": call.litellm_model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}

    router = Router(str(policy), budget_store="memory://", classifier=FixedScore(0.0), transport=MockTransport(handler))
    ladder = [r.model for r in router.policy.escalation.ladders["text"]]
    seconds = failed = 0
    for i, request_id in enumerate(run.data.ids):
        text = run.data.prompts[i]
        try:
            trace = (await router.acomplete([{"role": "user", "content": text}])).cascade
        except EscalationExhausted as exc:                  # nothing usable: not even a best answer
            assert run.engine.outcome[i] == FAILED, (text, exc.trace.attempts)
            assert exc.trace.cost_usd == pytest.approx(run.engine.cost_nano[i] / 1e9, abs=2e-9)
            failed += 1
            continue
        assert ladder.index(trace.model) == run.engine.answered[i], (text, trace.attempts)
        assert trace.outcome == ("ok" if run.engine.outcome[i] == 0 else "best_answer")
        assert trace.escalated == bool(run.engine.escalated[i])
        assert trace.cost_usd == pytest.approx(run.engine.cost_nano[i] / 1e9, abs=2e-9)
        seconds += any(a.status == "second_opinion" for a in trace.attempts)
    assert 0 < seconds < len(run.data.ids)           # code prompts are never sent for a second opinion
    assert failed == int((run.engine.outcome == FAILED).sum())
    assert router.store.total_spent() == pytest.approx(run.engine.cost_nano.sum() / 1e9, abs=1e-7)
    await router.aclose()


# GSM8K-style questions, answered by the cheap model with a final number, or cut off / never concluding;
# an output request answered with reasoning only; open chat with no number (which needs none)
NUMERIC = "Jill has {n} llamas. She trades 8 of the calves for 2 adults. What's the total number of llamas she has now?"
CRUX = "Complete the assertion with the output.\n[PYTHON]\ndef f(s):\n    return s.upper()\nassert f('a{n}') == ??\n[/PYTHON]"
CHAT = "Compose a short travel note about a trip to Hawaii, day {n}."
CHEAP_ANSWERS = [
    (NUMERIC, "She has {n} - 8 + 2 = {m} llamas.\nTherefore, Jill has {m} llamas.", False),
    (NUMERIC, "She traded 8 calves and got 2 adults.\nSo she has {n} - 8 + 2 = <<{n}-8+2", True),
    (NUMERIC, "The number of calves she traded does not change how many adults she keeps.", True),
    (CRUX, "[ANSWER]\nassert f('a{n}') == 'A{n}'\n[/ANSWER]", False),
    (CRUX, "1. The function upper-cases its argument.\n2. Every letter becomes a capital.", True),
    (CHAT, "Hawaii greets you with warm air and the smell of plumeria, and the beaches are quiet at dawn.", False),
]


def no_number_outcomes(n: int = 24):
    prompts, outcomes, responses, answers, escalates = [], [], [], {}, []
    for i in range(n):
        template, said, escalated = CHEAP_ANSWERS[i % len(CHEAP_ANSWERS)]
        text, cheap = template.format(n=i + 10), said.format(n=i + 10, m=i + 4)
        prompts.append((f"p{i}", text, 40 + i))
        for alias, model in (("deepseek-v2", "V2"), ("gpt-4o", "G4")):
            said_here = cheap if alias == "deepseek-v2" else f"#### {i + 4}"
            outcomes.append((f"p{i}", model, 0.0 if escalated and alias == "deepseek-v2" else 1.0, 50 + i, None))
            responses.append((f"p{i}", model, said_here))
            answers[(alias, text)] = (said_here, 40 + i, 50 + i)
        escalates.append(escalated)
    return prompts, outcomes, responses, answers, escalates


async def test_an_answer_with_no_final_number_escalates_live_and_in_replay(tmp_path):
    """The default policy's answer checker fails a cheap answer to a numeric (or output-prediction) prompt
    that states no final answer: replay escalates exactly those requests, and so does the Router."""
    prompts, outcomes, responses, answers, escalates = no_number_outcomes()
    folder = write_folder(tmp_path / "data", prompts, outcomes, responses)
    run = run_replay("default", [folder], maps={"deepseek-v2": "V2", "gpt-4o": "G4"}, split="all",
                     classifier=FixedScore(0.0))
    assert run.engine.escalated.astype(bool).tolist() == [escalates[int(i[1:])] for i in run.data.ids]

    def handler(call):
        text, pt, ct = answers[(call.model_alias, call.messages[-1]["content"])]
        return {"id": "x", "object": "chat.completion", "created": 0, "model": call.litellm_model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}

    router = Router("default", budget_store="memory://", classifier=FixedScore(0.0), transport=MockTransport(handler))
    for i, request_id in enumerate(run.data.ids):
        trace = (await router.acomplete([{"role": "user", "content": run.data.prompts[i]}])).cascade
        assert trace.escalated == bool(run.engine.escalated[i]) == escalates[int(request_id[1:])], trace.attempts
        assert trace.model == ("gpt-4o" if trace.escalated else "deepseek-v2")
        assert trace.cost_usd == pytest.approx(run.engine.cost_nano[i] / 1e9, abs=2e-9)
        if trace.escalated:
            checked = [c for a in trace.attempts for c in getattr(a, "checks", ()) if c.name == "answer_checker"]
            assert checked and not checked[0].passed and checked[0].score == 1.0, trace.attempts
    await router.aclose()


def test_prompts_without_a_recorded_second_opinion_are_left_out_whole_or_by_partitions(tmp_path):
    """An outcome folder that lacks the second model's outcome for some prompts: what the policy would do
    there is not recorded (live, the second model answers), so those prompts are left out and the report
    says so, as for a rung's model; partitions give the same report."""
    from cascade.replay.run import replay_report
    prompts, outcomes, responses, _ = recorded()
    gone = {f"p{i}" for i in range(0, 48, 5)}                    # 10 prompts without C2's outcome
    outcomes = [o for o in outcomes if not (o[1] == "C2" and o[0] in gone)]
    folder = write_folder(tmp_path / "data", prompts, outcomes, responses)
    policy = tmp_path / "match.yaml"
    policy.write_text("extends: quality-match\nname: match\nescalation:\n  checks: [non_empty, "
                      "{name: agreement, with: deepseek-coder, extract: auto}]\n")
    run = run_replay(str(policy), [folder], maps=MODELS, split="all", classifier=FixedScore(0.0))
    assert len(run.data) == 38 and run.data.dropped == 10 and not gone & set(run.data.ids)
    assert ("data: 10 prompt(s) of the split lack an outcome of some rung's model or of a second-opinion model "
            "(deepseek-coder): left out") in run.data.notes
    whole = replay_report(str(policy), [folder], maps=MODELS, split="all", classifier=FixedScore(0.0))
    parts = replay_report(str(policy), [folder], maps=MODELS, split="all", classifier=FixedScore(0.0), chunk_rows=7)
    assert whole["data"]["n_dropped"] == parts["data"]["n_dropped"] == 10
    assert whole["notes"] == parts["notes"]
