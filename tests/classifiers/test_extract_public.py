"""benchmarks/extract_public.py over tiny folders written in tmp (the public sets are not in the repo)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.cascade.replay.helpers import write_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from extract_public import cruxeval, gsm8k, gsm8k_agreement, kind_counts, misread, naive_number  # noqa: E402

Q1 = "Jill has 10 llamas and sells 3. How many llamas does she have?"
Q2 = "A pen costs $1.20 and an eraser $0.30. How much do 8 pens and 8 erasers cost?"


def test_gsm8k_counts_recall_precision_and_the_scorers_misreadings(tmp_path):
    responses = [("q1", "M", "10 - 3 = 7\n#### 7"), ("q2", "M", "8 x $1.50 = $12.00."),
                 ("q1", "S", "She sells some of them."), ("q2", "S", "#### 12")]
    outcomes = [("q1", "M", 1.0, 5, None), ("q2", "M", 0.0, 5, None),   # the scorer read "00"
                ("q1", "S", 0.0, 5, None), ("q2", "S", 1.0, 5, None)]
    folder = write_folder(tmp_path / "g", [("q1", Q1, 20), ("q2", Q2, 20)], outcomes, responses)
    pq.write_table(pa.table({"prompt_id": ["q1", "q2"], "reference": ["7", "12"]}), folder / "references.parquet")
    counts = gsm8k(folder)
    assert counts["M"]["right"] == counts["M"]["right_gold"] == 1
    assert counts["M"]["wrong_gold"] == counts["M"]["misread"] == 1 and counts["M"]["clean"] == 0
    assert counts["S"]["wrong_none"] == counts["S"]["clean"] == 1 and counts["S"]["clean_gold"] == 0


def test_misread_is_a_decimal_last_number_equal_to_gold_or_a_question_number_after_it():
    assert misread("that is $5.00.", "5") and not misread("that is 5.", "5") and not misread("$5.50", "5")
    question = "A farmer cuts 4 bales an hour for 6 hours. How many bales are left of 36?"
    assert misread("So, there are 12 bales of hay left in the field after a 6 hour day.", "12", question)
    assert not misread("So, there are 12 bales of hay left in the field after a 6 hour day.", "12", "no numbers")
    assert not misread("So, there are 11 bales of hay left in the field after a 6 hour day.", "12", question)


def test_cruxeval_compares_literals_with_the_benchmarks_verdicts(tmp_path):
    (tmp_path / "cruxeval.jsonl").write_text(
        json.dumps({"code": "def f(s):\n    return s.upper()", "input": "'ua6hajq'", "output": "'UA6HAJQ'",
                    "id": "s0"}) + "\n")
    templates = "\n".join(f"def {name}(s):\n    code, input = s\n    return f'{text}'\n" for name, text in [
        ("make_direct_output_prompt", "[PYTHON]\\n{code}\\nassert f({input}) == ??\\n[/PYTHON]"),
        ("make_cot_output_prompt", "[PYTHON]\\n{code}\\nassert f({input}) == ??\\n[/PYTHON]"),
        ("make_direct_output_prompt_phind", "{code}\\nassert f({input}) =="),
        ("make_direct_input_prompt", "{code}\\nassert f(??) == {input}"),
        ("make_cot_input_prompt", "{code}\\nassert f(??) == {input}")])
    (tmp_path / "crux_prompts.py").write_text(templates)
    (tmp_path / "crux_scored_codellama_output.json").write_text(json.dumps({
        "raw_generations": {"s0": ['"UA6HAJQ"', "'UA6HAJQ'", "'ua6hajq'"]},
        "raw_scored_generations": {"s0": [True, True, False]}}))
    prompts, verdicts = cruxeval(tmp_path)
    assert sum(kind_counts(prompts["make_direct_output_prompt"]).values()) == 1
    assert verdicts[(True, True)] == 2 and sum(verdicts.values()) == 3


def test_gsm8k_agreement_counts_both_right_and_cheap_wrong_pairs(tmp_path):
    responses = [("q1", "M", "She has 7 llamas."), ("q1", "S", "10 - 3 = 7\n#### 7"),
                 ("q2", "M", "So she pays 8 x 1.5 = 12 dollars for 8 pens."), ("q2", "S", "#### 24")]
    outcomes = [("q1", "M", 1.0, 5, None), ("q1", "S", 1.0, 5, None), ("q2", "M", 0.0, 5, None),
                ("q2", "S", 1.0, 5, None)]
    folder = write_folder(tmp_path / "g", [("q1", Q1, 20), ("q2", Q2, 20)], outcomes, responses,
                          meta={"cheap": "M", "strong": "S"})
    counts = gsm8k_agreement(folder)
    ours, naive = counts["ours (agree, auto)"], counts["naive last number"]
    assert ours["both"] == ours["both_agree"] == 1 and ours["cheap_wrong"] == 1 and ours["cheap_wrong_agree"] == 0
    assert naive["both_agree"] == 1 and naive_number("for 8 pens.") == "8"


def test_straight_shares_follow_each_policys_classifier_and_threshold():
    from extract_public import straight_shares

    from classifiers import load_classifier
    from policies.loader import load_policy
    prompts = ["What is 2 + 2?", "Prove that there are infinitely many primes of the form 4k + 3, in full detail.",
               "Write a Python function that merges two sorted lists."] * 3
    shares = straight_shares(prompts)
    assert set(shares) == {"default", "quality-match"}
    for name, share in shares.items():
        routing = load_policy(name).routing
        scores = load_classifier(routing.classifier).score(prompts)
        assert share == sum(s >= routing.thresholds[0] for s in scores) / len(prompts)
