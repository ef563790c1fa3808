"""Converters for lm-sys/RouteLLM's GSM8K and MT-Bench evaluation files: traffic the shipped classifier and
answer checker were not fitted on (grade-school math, open chat), with both models' answer texts.

* ``routellm_gsm8k``: ``gsm8k_responses.csv`` (``prompt``, a True/False column per model, ``<model>_response``)
  and GSM8K's ``test.jsonl`` (``question``, ``answer`` ending in ``#### N``). Score 1 where RouteLLM judged the
  answer right; ``answers`` holds the number RouteLLM's scorer read (the last run of digits once commas are
  dropped: it reproduces every label), ``references`` GSM8K's own final number. The prompt is the question as a
  user asks it (RouteLLM put an 8-shot preamble before it).
* ``routellm_mt_bench``: ``judgements.jsonl`` (GPT-4's single-answer judgements; the answer judged is quoted in
  ``user_prompt``) and ``question.jsonl``. First turns only; score = the 1-10 judgement / 10.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cascade.datasets.errors import ConversionError
from cascade.datasets.manifest import DataSetSpec
from cascade.datasets.outcome_format import OutcomeRows, estimated_completion_tokens
from cascade.datasets.upstream import bad, csv_rows, jsonl

_JUDGED_ANSWER = re.compile(r"\[The Start of (?:the )?Assistant's Answer\]\n(.*)\n\[The End of (?:the )?Assistant's "
                            r"Answer\]", re.S)


def _file(raw: Path, spec: DataSetSpec, name: str) -> Path:
    if not any(f.name == name for f in spec.files):
        raise ConversionError(f"manifest set {spec.name!r}: the converter needs a file named {name}")
    return raw / name


def scorer_number(text: str) -> str | None:
    """RouteLLM's GSM8K scorer: the last run of digits of the text once commas are dropped, as an integer."""
    found = re.findall(r"\d+", text.replace(",", ""))
    return str(int(found[-1])) if found else None


def convert_routellm_gsm8k(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    test = _file(raw, spec, "test.jsonl")
    gold = {}
    for number, rec in jsonl(test):
        if not isinstance(rec.get("question"), str) or "####" not in str(rec.get("answer", "")):
            raise bad(test, f"line {number}: expected {{'question': str, 'answer': '... #### N'}}")
        gold[rec["question"]] = scorer_number(rec["answer"].rsplit("####", 1)[1])
    path = _file(raw, spec, "gsm8k_responses.csv")
    header, reader = csv_rows(path)
    models = [c for c in header if c != "prompt" and not c.endswith("_response")]
    missing = [c for c in ("prompt", *(f"{m}_response" for m in models)) if c not in header]
    if missing or not models:
        raise bad(path, f"not RouteLLM's GSM8K responses: missing column(s) {missing or ['<models>']}")
    for rec in reader:
        text = rec["prompt"]
        pid = "gsm8k-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
        if pid in rows.prompts:
            continue
        rows.add_prompt(pid, "gsm8k", text)
        if gold.get(text) is not None:
            rows.add_reference(pid, gold[text])
        for model in models:
            if rec[model] not in ("True", "False"):
                raise bad(path, f"column {model!r}: expected True or False, got {rec[model]!r}")
            answer = rec[f"{model}_response"]
            rows.add_outcome(pid, model, 1.0 if rec[model] == "True" else 0.0, estimated_completion_tokens(answer))
            rows.add_response(pid, model, answer)
            rows.add_answer(pid, model, scorer_number(answer))
    return rows, list(rows.prompts)


def convert_routellm_mt_bench(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    qpath = _file(raw, spec, "question.jsonl")
    questions = {}
    for number, rec in jsonl(qpath):
        turns = rec.get("turns")
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], str) or "question_id" not in rec:
            raise bad(qpath, f"line {number}: expected {{'question_id', 'category', 'turns': [str, ...]}}")
        questions[rec["question_id"]] = rec
    jpath = _file(raw, spec, "judgements.jsonl")
    first_turns = []
    for number, rec in jsonl(jpath):
        if rec.get("turn") != 1:
            continue
        question = questions.get(rec.get("question_id"))
        found = _JUDGED_ANSWER.search(str(rec.get("user_prompt", "")))
        if question is None or found is None or not isinstance(rec.get("score"), (int, float)):
            raise bad(jpath, f"line {number}: expected a first-turn judgement of a known question, quoting the "
                              f"answer judged, with a numeric score")
        first_turns.append((int(rec["question_id"]), str(rec["model"]), float(rec["score"]), found.group(1)))
    for qid, model, score, answer in sorted(first_turns, key=lambda t: t[0]):
        pid = f"mt-bench-{qid}"
        rows.add_prompt(pid, f"mt-bench/{questions[qid].get('category', 'unknown')}", questions[qid]["turns"][0])
        rows.add_outcome(pid, model, score / 10.0, estimated_completion_tokens(answer))
        rows.add_response(pid, model, answer)
    return rows, list(rows.prompts)
