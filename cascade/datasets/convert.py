"""Converters: the files a set publishes -> one outcome folder (see :mod:`cascade.datasets.outcome_format`).

Each converter reads the set's verified files from a raw folder, in manifest order, and returns the rows.
The four shared folders are what these produce (``../shared/data``; for ``mmlu_pro`` the shared folder keeps
10,683 of the 12,032 questions). Upstream formats:

* ``mmlu_pro``: MMLU-Pro result files (a JSON list of questions, each with ``question``, ``options``,
  ``answer``, ``pred`` and the model's text under ``response`` / ``generated_text`` / ``model_outputs``),
  plain or as the only JSON file of a zip; the manifest names each file's model.
* ``routellm_mmlu``: RouteLLM's ``mmlu_<subject>.csv``: ``prompt`` then one True/False column per model.
* ``routerbench``: RouterBench CSV export: ``sample_id``, ``prompt`` (a Python-literal list of strings),
  ``eval_name``, a score column per model, ``<model>|model_response`` and ``<model>|total_cost``.
* ``routellm_gsm8k``, ``routellm_mt_bench``: :mod:`cascade.datasets.convert_evals`.
* ``llmrouter``: a JSON list of ``{"question": str, "scores": {model: number}}``; the file stem
  (train / test) is part of the id and the task.

Reading CSV and JSONL files, and the error that names a file: :mod:`cascade.datasets.upstream`.
"""
from __future__ import annotations

import ast
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any, Callable

from cascade.datasets import convert_evals
from cascade.datasets.errors import ConversionError
from cascade.datasets.manifest import DataSetSpec, FileSpec
from cascade.datasets.outcome_format import OutcomeRows, estimated_completion_tokens
from cascade.datasets.upstream import bad, csv_rows

MMLU_PRO_TEXT_KEYS = ("response", "generated_text", "model_outputs")
ROUTERBENCH_NOT_MODELS = {"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}


def _read_json(path: Path) -> Any:
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.endswith(".json")]
                if len(members) != 1:
                    raise bad(path, f"expected one JSON file in the zip, found {len(members)}")
                return json.loads(archive.read(members[0]))
        return json.loads(path.read_bytes())
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError) as exc:
        raise bad(path, f"not readable as {'a zip of ' if path.suffix == '.zip' else ''}JSON: {exc}") from None


# ---- MMLU-Pro -------------------------------------------------------------------------------------------

def mmlu_pro_prompt(question: str, options: list[str]) -> str:
    return question + "\nOptions:\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def _mmlu_pro_file(rows: OutcomeRows, spec: FileSpec, path: Path, keep_text: bool) -> None:
    records = _read_json(path)
    if not isinstance(records, list):
        raise bad(path, "expected a JSON list of questions")
    for rec in records:
        if not isinstance(rec, dict):
            continue                     # some result files carry stray summary strings between questions
        try:
            pid = f"mmlu-pro-{int(rec['question_id'])}"
            prompt = mmlu_pro_prompt(rec["question"], list(rec["options"]))
            task = "mmlu-pro/" + str(rec["category"]).replace(" ", "_")
            pred, answer = rec.get("pred"), rec["answer"]
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(path, f"a question lacks a usable {exc}") from None
        if (pid, spec.model) in rows.answers:
            continue                     # a question repeated within one file: the first one counts
        text = next((rec[k] for k in MMLU_PRO_TEXT_KEYS if k in rec), None)
        rows.add_prompt(pid, task, prompt)
        rows.add_outcome(pid, spec.model, 1.0 if pred is not None and pred == answer else 0.0,
                         estimated_completion_tokens(text))
        rows.add_answer(pid, spec.model, pred)
        if keep_text:
            rows.add_response(pid, spec.model, text)


def convert_mmlu_pro(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    for f in spec.files:
        if not f.model:
            raise ConversionError(f"manifest set {spec.name!r}, file {f.name}: no 'model' named for it")
        _mmlu_pro_file(rows, f, raw / f.name, f.model in spec.responses_for)
    order = sorted(rows.prompts, key=lambda pid: int(pid.rsplit("-", 1)[1]))
    return rows, order


# ---- RouteLLM MMLU --------------------------------------------------------------------------------------

def routellm_prompt_id(task: str, prompt: str) -> str:
    return "routellm-" + hashlib.sha1(f"{task}\0{prompt}".encode("utf-8")).hexdigest()[:16]


def convert_routellm_mmlu(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    for f in spec.files:
        path = raw / f.name
        stem = Path(f.name).stem
        if not stem.startswith("mmlu_"):
            raise bad(path, "expected a file named mmlu_<subject>.csv")
        task = "mmlu/" + stem[len("mmlu_"):]
        header, reader = csv_rows(path)
        models = [c for c in header if c != "prompt"]
        if "prompt" not in header or not models:
            raise bad(path, f"expected a 'prompt' column and one column per model, got {header}")
        for rec in reader:
            pid = routellm_prompt_id(task, rec["prompt"])
            rows.add_prompt(pid, task, rec["prompt"])
            for model in models:
                value = rec[model]
                if value not in ("True", "False"):
                    raise bad(path, f"column {model!r}: expected True or False, got {value!r}")
                rows.add_outcome(pid, model, 1.0 if value == "True" else 0.0)
    return rows, list(rows.prompts)


# ---- RouterBench ----------------------------------------------------------------------------------------

def _routerbench_prompt(cell: str, path: Path) -> str:
    try:
        value = ast.literal_eval(cell)      # a literal only: never evaluates code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value[0]
    raise bad(path, f"a prompt cell is not a list of strings: {cell[:80]!r}")


def _number(cell: str, path: Path, column: str) -> float | None:
    if cell == "":
        return None
    try:
        return float(cell)
    except ValueError:
        raise bad(path, f"column {column!r}: expected a number, got {cell[:40]!r}") from None


def convert_routerbench(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    for f in spec.files:
        path = raw / f.name
        header, reader = csv_rows(path)
        models = [c for c in header if "|" not in c and c not in ROUTERBENCH_NOT_MODELS]
        missing = [c for c in ("sample_id", "prompt", "eval_name") if c not in header]
        missing += [f"{m}|{k}" for m in models for k in ("model_response", "total_cost") if f"{m}|{k}" not in header]
        if missing or not models:
            raise bad(path, f"not a RouterBench CSV export: missing column(s) {missing or ['<models>']}")
        for rec in reader:
            pid = "routerbench-" + rec["sample_id"]
            rows.add_prompt(pid, "routerbench/" + rec["eval_name"], _routerbench_prompt(rec["prompt"], path))
            for model in models:
                text = rec[f"{model}|model_response"]
                rows.add_outcome(pid, model, _number(rec[model], path, model), estimated_completion_tokens(text),
                                 _number(rec[f"{model}|total_cost"], path, f"{model}|total_cost"))
                rows.add_response(pid, model, text)
    return rows, list(rows.prompts)


# ---- LLMRouter ------------------------------------------------------------------------------------------

def convert_llmrouter(raw: Path, spec: DataSetSpec) -> tuple[OutcomeRows, list[str]]:
    rows = OutcomeRows()
    for f in spec.files:
        path = raw / f.name
        part = Path(f.name).stem
        records = _read_json(path)
        if not isinstance(records, list):
            raise bad(path, "expected a JSON list of {question, scores}")
        for i, rec in enumerate(records):
            scores = rec.get("scores") if isinstance(rec, dict) else None
            if not isinstance(scores, dict) or not isinstance(rec.get("question"), str):
                raise bad(path, f"item {i}: expected {{'question': str, 'scores': {{model: number}}}}")
            pid = f"llmrouter-{part}-{i}"
            rows.add_prompt(pid, f"llmrouter/{part}", rec["question"])
            for model, score in scores.items():
                if isinstance(score, bool) or not isinstance(score, (int, float)):
                    raise bad(path, f"item {i}: score of {model!r} is not a number: {score!r}")
                rows.add_outcome(pid, model, float(score))
    return rows, list(rows.prompts)


Converter = Callable[[Path, DataSetSpec], tuple[OutcomeRows, list[str]]]
CONVERTERS: dict[str, Converter] = {
    "mmlu_pro": convert_mmlu_pro,
    "routellm_mmlu": convert_routellm_mmlu,
    "routerbench": convert_routerbench,
    "llmrouter": convert_llmrouter,
    "routellm_gsm8k": convert_evals.convert_routellm_gsm8k,
    "routellm_mt_bench": convert_evals.convert_routellm_mt_bench,
}


def convert(raw: Path, spec: DataSetSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tables and meta.json of ``spec`` from its verified files in ``raw``."""
    converter = CONVERTERS.get(spec.converter)
    if converter is None:
        raise ConversionError(f"manifest set {spec.name!r}: unknown converter {spec.converter!r} "
                              f"(known: {', '.join(CONVERTERS)})")
    rows, order = converter(raw, spec)
    if not rows.outcomes:
        raise ConversionError(f"{spec.name}: the files hold no outcome at all ({raw})")
    for what, expected, got in (("prompts", spec.expect_prompts, len(order)),
                                ("models", spec.expect_models, len(rows.models))):
        if expected is not None and expected != got:
            raise ConversionError(f"{spec.name}: conversion gave {got:,} {what}, the manifest expects {expected:,} "
                                  f"({raw})")
    meta = {"source": f"{spec.publisher} ({spec.license})", "homepage": spec.homepage, "score": spec.score,
            "cheap": spec.cheap, "strong": spec.strong, "prompts": len(order), "models": len(rows.models),
            "files": {f.name: f.url for f in spec.files}}
    if spec.aliases:
        meta["aliases"] = dict(spec.aliases)        # replay maps these catalog aliases to dataset models
    return rows.tables(order), meta
