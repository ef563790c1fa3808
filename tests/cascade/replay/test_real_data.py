"""Replay on the real MMLU-Pro outcomes (DeepSeek-V2 -> GPT-4o), test split."""
from __future__ import annotations

import pytest

from cascade.replay.run import replay_report


@pytest.fixture(scope="module")
def mmlu_pro(data_root):
    return data_root / "mmlu_pro"


def test_default_policy_on_mmlu_pro(mmlu_pro, tmp_path):
    doc = replay_report("default", [mmlu_pro], full_sweep=True)
    rows = doc["rows"]
    assert doc["data"]["split"] == "test" and 1400 < doc["data"]["n_requests"] < 1800
    assert doc["data"]["models"] == [{"deepseek-v2": "DeepSeek-V2-Chat(api,2024-05)", "gpt-4o": "gpt-4o-2024-05-13"}]
    assert 0.47 < rows["always_cheap"]["quality"] < 0.58 and 0.67 < rows["always_strong"]["quality"] < 0.77
    assert rows["always_cheap"]["quality"] < rows["policy"]["quality"] < rows["always_strong"]["quality"]
    assert rows["oracle"]["apgr"] > 1.0 and rows["random"]["apgr"] == pytest.approx(0.5)
    assert doc["engine_equals_vectorised"] is True
    assert doc["checks"]["evaluated"]["non_empty"] >= doc["data"]["n_requests"]

    # the same policy with the rule answer checker: cheap answers without an extractable choice escalate
    strict = tmp_path / "strict.yaml"
    strict.write_text("extends: default\nname: strict\nescalation:\n  checks: [non_empty, "
                      "{name: answer_checker, artifact: rules, threshold: 0.5}]\n")
    checked = replay_report(str(strict), [mmlu_pro], full_sweep=True)
    op = checked["rows"]["policy"]
    assert 0.02 < op["escalation_rate"] < 0.3
    alone = checked["rows"]["classifier"]          # the same thresholds without answer checks
    assert op["quality"] > alone["quality"] and op["total_usd"] > alone["total_usd"]
    # the shipped policy (trained checker) keeps more of GPT-4o's quality than its classifier alone
    assert rows["policy"]["quality"] > rows["classifier"]["quality"]
    assert len(checked["sweep"]["points"]["t1"]) == 101 * 101
    assert checked["engine_equals_vectorised"] is True


def test_a_prompt_without_a_recorded_second_opinion_is_left_out_and_said(mmlu_pro, tmp_path):
    """quality-match on MMLU-Pro: DeepSeek-Coder-V2 has no recorded outcome for 1,287 of the folder's 10,683
    prompts. Live, the second model would answer; what it would say is not recorded, so those prompts are
    left out and the report says so, as prompts lacking a rung's outcome are (DeepSeek-V2 lacks 34; 1,312
    in all). Where a multiple-choice answer states no final letter it does not "agree" (a few prompts list
    one option only: text, too long to compare, where the check abstains)."""
    import numpy as np

    from cascade.replay.run import run_replay

    policy = tmp_path / "agree.yaml"
    policy.write_text("extends: quality-match\nname: agree\nrouting: {thresholds: [1.0]}\nescalation:\n"
                      "  checks: [{name: agreement, with: deepseek-coder, extract: auto}]\n")
    run = run_replay(str(policy), [mmlu_pro], maps=["deepseek-coder=DeepSeek-Coder-V2_5shots"], split="all")
    data, kept = run.data, run.engine.answered == 0
    assert data.consult_available.all() and len(data) == 10_683 - 1_312 and data.dropped == 1_312
    assert ("mmlu_pro: 1312 prompt(s) of the split lack an outcome of some rung's model or of a second-opinion "
            "model (deepseek-coder): left out") in data.notes
    assert kept.sum() > 4000
    from classifiers.extract import extract, prompt_kind
    choice = [i for i in np.flatnonzero(kept) if prompt_kind(data.prompts[i]) == "choice"]
    assert len(choice) > 0.99 * kept.sum()
    assert all(extract(data.responses[0][i], "choice", data.prompts[i]) is not None for i in choice)
