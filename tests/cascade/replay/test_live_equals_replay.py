"""Live and replay stay equal with a second opinion: the Router, answering through a transport that
returns the recorded answers (and their token counts), makes the same decision at the same cost as the
replay of the same recorded outcomes, request by request."""
from __future__ import annotations

import numpy as np
import pytest

from cascade.replay.run import run_replay
from cascade.router import Router
from cascade.transport import MockTransport
from tests.cascade.replay.helpers import write_folder
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
    seconds = 0
    for i, request_id in enumerate(run.data.ids):
        text = run.data.prompts[i]
        resp = await router.acomplete([{"role": "user", "content": text}])
        trace = resp.cascade
        assert ladder.index(trace.model) == run.engine.answered[i], (text, trace.attempts)
        assert trace.outcome == ("ok" if run.engine.outcome[i] == 0 else "best_answer")
        assert trace.escalated == bool(run.engine.escalated[i])
        assert trace.cost_usd == pytest.approx(run.engine.cost_nano[i] / 1e9, abs=2e-9)
        seconds += any(a.status == "second_opinion" for a in trace.attempts)
    assert 0 < seconds < len(run.data.ids)           # code prompts are never sent for a second opinion
    assert router.store.total_spent() == pytest.approx(run.engine.cost_nano.sum() / 1e9, abs=1e-7)
    await router.aclose()
