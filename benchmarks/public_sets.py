"""Turn public routing-eval files into outcome folders that ``cascade replay --data`` reads.

Held-out traffic that ../shared/data does not hold: grade-school math (GSM8K) and open chat (MT-Bench first
turns), each answered by Mixtral-8x7B-Instruct and GPT-4-1106 in lm-sys/RouteLLM's own evaluation
(Apache-2.0). Download that repository (``git clone https://github.com/lm-sys/RouteLLM``), then:

    python benchmarks/public_sets.py gsm8k    --routellm RouteLLM --out /tmp/gsm8k
    python benchmarks/public_sets.py mt-bench --routellm RouteLLM --out /tmp/mt-bench
    cascade replay --policy default --data /tmp/gsm8k --split all

Each folder has the tables of ../shared/data/DATA.md (prompts, outcomes, responses, meta.json). Prompts are
the questions as a user would ask them (RouteLLM's 8-shot preamble is not part of them). All of them are kept:
RouteLLM's ``contaminated_prompts.jsonl`` lists prompts its own routers trained on, which ours did not.

* gsm8k: score 1 when RouteLLM judged the answer right. Also ``references.parquet`` (prompt_id, reference:
  GSM8K's own final number) and ``answers.parquet`` (prompt_id, model, answer: the number RouteLLM's scorer
  read, the last integer of the text), so an extractor can be measured against both.
* mt-bench: first turns only; score = GPT-4's 1-10 judgement / 10.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable

CHEAP = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
_OUTCOME_COLUMNS = ("prompt_id", "model", "score", "completion_tokens", "cost_usd")
_MT_ANSWER = re.compile(r"\[The Start of (?:the )?Assistant's Answer\]\n(.*)\n\[The End of (?:the )?Assistant's Answer\]",
                        re.S)


def prompt_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.blake2b(text.encode('utf-8'), digest_size=8).hexdigest()}"


def scorer_number(text: str) -> str | None:
    """RouteLLM's (SGLang's) GSM8K scorer: the last run of digits once commas are dropped."""
    found = re.findall(r"\d+", text.replace(",", ""))
    return str(int(found[-1])) if found else None


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _write(out: Path, tables: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    out.mkdir(parents=True, exist_ok=True)
    schemas = {"outcomes": pa.schema([("prompt_id", pa.string()), ("model", pa.string()), ("score", pa.float64()),
                                      ("completion_tokens", pa.float64()), ("cost_usd", pa.float64())])}
    for name, rows in tables.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=schemas.get(name)), out / f"{name}.parquet")
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def _outcome(pid: str, model: str, score: float, response: str) -> dict[str, Any]:
    return {"prompt_id": pid, "model": model, "score": score,
            "completion_tokens": float(-(-len(response) // 4)), "cost_usd": None}


def _prompt(pid: str, task: str, text: str) -> dict[str, Any]:
    from cascade.tokens import count_text_tokens
    return {"prompt_id": pid, "task": task, "prompt": text, "prompt_tokens": count_text_tokens(text)}


def gsm8k(routellm: Path, out: Path) -> int:
    root = routellm / "routellm" / "evals" / "gsm8k"
    gold = {row["question"]: scorer_number(row["answer"].rsplit("####", 1)[-1]) for row in _jsonl(root / "test.jsonl")}
    tables: dict[str, list[dict[str, Any]]] = {k: [] for k in ("prompts", "outcomes", "responses", "answers",
                                                                "references")}
    seen: set[str] = set()
    with (root / "gsm8k_responses.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = row["prompt"]
            if text in seen:
                continue
            seen.add(text)
            pid = prompt_id("gsm8k", text)
            tables["prompts"].append(_prompt(pid, "gsm8k", text))
            if gold.get(text) is not None:
                tables["references"].append({"prompt_id": pid, "reference": gold[text]})
            for model in (CHEAP, STRONG):
                response = row[f"{model}_response"]
                score = {"True": 1.0, "False": 0.0}[row[model]]
                tables["outcomes"].append(_outcome(pid, model, score, response))
                tables["responses"].append({"prompt_id": pid, "model": model, "response": response})
                tables["answers"].append({"prompt_id": pid, "model": model, "answer": scorer_number(response)})
    _write(out, tables, {"source": "lm-sys/RouteLLM routellm/evals/gsm8k (Apache-2.0)",
                         "score": "1 if RouteLLM judged the answer right", "cheap": CHEAP, "strong": STRONG,
                         "prompts": len(tables["prompts"]), "models": 2})
    return len(tables["prompts"])


def mt_bench(routellm: Path, out: Path) -> int:
    root = routellm / "routellm" / "evals" / "mt_bench"
    questions = {row["question_id"]: row for row in _jsonl(root / "question.jsonl")}
    tables: dict[str, list[dict[str, Any]]] = {k: [] for k in ("prompts", "outcomes", "responses")}
    seen: set[str] = set()
    for row in _jsonl(root / "judgements.jsonl"):
        if row["turn"] != 1 or row["model"] not in (CHEAP, STRONG):
            continue
        question = questions[row["question_id"]]
        text = question["turns"][0]
        pid = prompt_id("mt-bench", text)
        if pid not in seen:
            seen.add(pid)
            tables["prompts"].append(_prompt(pid, f"mt-bench/{question['category']}", text))
        found = _MT_ANSWER.search(row["user_prompt"])
        if found is None:
            raise SystemExit(f"judgement of question {row['question_id']} ({row['model']}) holds no answer")
        response = found.group(1)
        tables["outcomes"].append(_outcome(pid, row["model"], float(row["score"]) / 10.0, response))
        tables["responses"].append({"prompt_id": pid, "model": row["model"], "response": response})
    _write(out, tables, {"source": "lm-sys/RouteLLM routellm/evals/mt_bench (Apache-2.0), first turns",
                         "score": "GPT-4's single-answer judgement (1-10) / 10", "cheap": CHEAP, "strong": STRONG,
                         "prompts": len(tables["prompts"]), "models": 2})
    return len(tables["prompts"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=("gsm8k", "mt-bench"))
    parser.add_argument("--routellm", type=Path, required=True, help="a checkout of github.com/lm-sys/RouteLLM")
    parser.add_argument("--out", type=Path, required=True, help="the outcome folder to write")
    args = parser.parse_args(argv)
    n = (gsm8k if args.set == "gsm8k" else mt_bench)(args.routellm, args.out)
    print(f"{args.set}: {n} prompts written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
