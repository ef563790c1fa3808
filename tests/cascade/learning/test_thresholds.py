"""The checker threshold chosen on a whole trace: labels calibrate the checker, every traced cheap
answer counts. Real MMLU-Pro math answers of DeepSeek-V2 (calibration split), labelled by their score."""
from __future__ import annotations

import numpy as np
import pytest

from cascade.learning.thresholds import checker_threshold_from_traces, expected_apgr, smoothed
from classifiers.splits import split_of
from policies.loader import load_policy
from tests.cascade.replay.helpers import data_root

CHEAP = "DeepSeek-V2-Chat(api,2024-05)"


def math_rows(n: int, labelled: int) -> list[dict]:
    """Trace rows of ``n`` math questions answered by deepseek-v2; the first ``labelled`` carry a label."""
    import pyarrow.parquet as pq
    root = data_root() / "mmlu_pro"
    prompts = {p["prompt_id"]: p["prompt"] for p in pq.read_table(root / "prompts.parquet").to_pylist()
               if p["task"] == "mmlu-pro/math" and split_of(p["prompt"]) == "calibration"}
    scores = {o["prompt_id"]: o["score"] for o in pq.read_table(root / "outcomes.parquet").to_pylist()
              if o["model"] == CHEAP and o["prompt_id"] in prompts}
    texts = {r["prompt_id"]: r["response"] for r in pq.read_table(root / "responses.parquet").to_pylist()
             if r["model"] == CHEAP and r["prompt_id"] in scores and r["response"]}
    rows = []
    for k, pid in enumerate(sorted(texts)[:n]):
        row = {"request_id": pid, "model": "deepseek-v2", "prompt": prompts[pid], "answer": texts[pid],
               "attempts": [{"model": "deepseek-v2", "status": "ok", "answer": texts[pid]}]}
        if k < labelled:
            row["label"] = {"quality": float(scores[pid]), "source": "agreement", "model": "deepseek-v2"}
        rows.append(row)
    return rows


@pytest.mark.skipif(data_root() is None, reason="needs ../shared/data")
@pytest.mark.parametrize("cut", [0.3, 0.6])
def test_the_threshold_escalates_where_the_labels_turn_inadequate(cut):
    """Labels say 'inadequate' exactly where the checker scores at least ``cut``: the threshold
    chosen from 40 labels and 150 answers lands near ``cut``."""
    from classifiers import load_answer_checker
    policy = load_policy("default")
    rows = math_rows(150, labelled=40)
    scores = load_answer_checker("default").score([r["prompt"] for r in rows], [r["answer"] for r in rows])
    for row, score in zip(rows[:40], scores):
        row["label"]["quality"] = 0.0 if score >= cut else 1.0
    t2, report = checker_threshold_from_traces(policy, rows)
    assert report["answers"] == 150 and report["labelled"] == 40
    assert t2 is not None and abs(t2 - cut) <= 0.15


@pytest.mark.skipif(data_root() is None, reason="needs ../shared/data")
def test_too_few_labels_or_a_checker_that_ranks_backwards_keep_the_threshold_to_the_labelled_replay():
    policy = load_policy("default")
    t2, report = checker_threshold_from_traces(policy, math_rows(60, labelled=10))
    assert t2 is None and "10 labelled cheap answers" in report["skipped"]
    backwards = math_rows(80, labelled=60)
    for row in backwards[:60]:
        row["label"]["quality"] = 1.0 - row["label"]["quality"]       # inadequate where the checker says fine
    t2, report = checker_threshold_from_traces(policy, backwards)
    assert t2 is None and "do not score higher" in report["skipped"]


def test_expected_apgr_and_smoothing():
    routed = np.array([0.9, 0.1, 0.1, 0.1])
    checked = np.array([0.0, 0.9, 0.2, 0.1])
    q = np.array([1.0, 0.0, 1.0, 1.0])                          # only the second cheap answer is inadequate
    assert expected_apgr(routed, checked, 0.5, q) > expected_apgr(routed, checked, 1.0, q)
    assert np.isnan(expected_apgr(routed, checked, 0.5, np.ones(4)))     # nothing to recover
    assert smoothed(np.array([0.0, 3.0, np.nan, 0.0]), half=1).tolist() == [1.5, 1.5, 1.5, 0.0]
