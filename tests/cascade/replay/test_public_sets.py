"""benchmarks/public_sets.py: RouteLLM's GSM8K and MT-Bench files -> outcome folders replay reads."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cascade.replay.run import replay_report

ROOT = Path(__file__).resolve().parents[3]


def _module():
    spec = importlib.util.spec_from_file_location("public_sets", ROOT / "benchmarks" / "public_sets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["public_sets"] = module
    spec.loader.exec_module(module)
    return module


public_sets = _module()
CHEAP, STRONG = public_sets.CHEAP, public_sets.STRONG
QUESTIONS = [("Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
             ("A pen costs $2 and a book costs $10. How much do 2 pens and 1 book cost?", "1,400")]


def _routellm(tmp_path: Path) -> Path:
    gsm = tmp_path / "RouteLLM" / "routellm" / "evals" / "gsm8k"
    gsm.mkdir(parents=True)
    with (gsm / "test.jsonl").open("w") as f:
        for q, a in QUESTIONS:
            f.write(json.dumps({"question": q, "answer": f"work <<1+1=2>>2\n#### {a}"}) + "\n")
    with (gsm / "gsm8k_responses.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", CHEAP, STRONG, f"{CHEAP}_response", f"{STRONG}_response"])
        w.writerow([QUESTIONS[0][0], "True", "True", "3 + 4 = 7\n#### 7", "He has 7 apples."])
        w.writerow([QUESTIONS[1][0], "False", "True", "2 * 2 = 4, 4 + 10 = 15", "2 * $2 + $10 = $1,400."])
        w.writerow([QUESTIONS[1][0], "False", "True", "a repeated row", "is read once"])
    mt = tmp_path / "RouteLLM" / "routellm" / "evals" / "mt_bench"
    mt.mkdir(parents=True)
    (mt / "question.jsonl").write_text(json.dumps({"question_id": 81, "category": "writing",
                                                   "turns": ["Write a haiku about routers.", "Now in French."]}) + "\n")
    with (mt / "judgements.jsonl").open("w") as f:
        for model, answer, score, turn in ((CHEAP, "Packets drift along", 6, 1), (STRONG, "Quiet paths of light", 9, 1),
                                           (STRONG, "second turn", 2, 2)):
            prompt = f"[Question]\nWrite...\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
            f.write(json.dumps({"question_id": 81, "model": model, "user_prompt": prompt, "score": score,
                                "turn": turn}) + "\n")
    return tmp_path / "RouteLLM"


def test_gsm8k_folder_replays(tmp_path):
    out = tmp_path / "gsm8k"
    assert public_sets.gsm8k(_routellm(tmp_path), out) == 2
    refs = pq.read_table(out / "references.parquet").to_pylist()
    assert sorted(r["reference"] for r in refs) == ["1400", "7"]
    answers = {(r["model"], r["answer"]) for r in pq.read_table(out / "answers.parquet").to_pylist()}
    assert (CHEAP, "15") in answers and (STRONG, "1400") in answers and (STRONG, "7") in answers
    doc = replay_report("default", [out], split="all")
    assert doc["data"]["n_requests"] == 2
    assert doc["rows"]["always_cheap"]["quality"] == pytest.approx(0.5)
    assert doc["rows"]["always_strong"]["quality"] == pytest.approx(1.0)


def test_mt_bench_first_turns_with_judge_scores(tmp_path):
    out = tmp_path / "mt"
    assert public_sets.mt_bench(_routellm(tmp_path), out) == 1
    scores = {r["model"]: r["score"] for r in pq.read_table(out / "outcomes.parquet").to_pylist()}
    assert scores == {CHEAP: pytest.approx(0.6), STRONG: pytest.approx(0.9)}
    texts = {r["model"]: r["response"] for r in pq.read_table(out / "responses.parquet").to_pylist()}
    assert texts[CHEAP] == "Packets drift along"
    assert replay_report("default", [out], split="all")["data"]["n_requests"] == 1


def test_scorer_reads_the_last_integer():
    assert public_sets.scorer_number("so 1,234 apples") == "1234"
    assert public_sets.scorer_number("costs $2.50") == "50"
    assert public_sets.scorer_number("no number") is None
