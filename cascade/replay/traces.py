"""Router JSONL traces (:mod:`cascade.trace`) as replay data: the trace is the replay log (JSONL, or the
Parquet file ``cascade traces to-parquet`` makes of it: :mod:`cascade.replay.traceparquet`).

Per request and per model of the trace, the recorded attempt is the outcome: ``ok`` / ``check_failed``
answers are available (their cost as recorded, their check outcomes as recorded), an ``error`` is a
failed call, and a model the request never called has no outcome (replay counts a planned call to it
as a failed call, and says how often that happened). Traces carry no graded quality: an answer's
quality is 1 when it passed the checks it was given in production (status ``ok``), else 0 — unless the
request was labelled (:mod:`cascade.learning.labels`: a shadow answer's label or a user's feedback), whose
label is its quality; a shadow answer is that model's outcome for the request. Refused requests (outcome
``refused``: a budget cap, a bad request) and response-cache hits are left out, and the notes say how many.
The prompt and the returned answer are in the trace only when the sink kept text
(``TraceSink(keep_text=True)``); then the policy's classifier rescores the prompt, the checks are
re-run on the answer, and a split can be taken. Otherwise the recorded classifier score is used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from classifiers.splits import split_of
from policies.errors import ConfigError
from policies.schema import Policy

from cascade.replay.data import ReplayData, check_maps, check_split, text_ladder

_ANSWERED = ("ok", "check_failed")


def load_traces(path: str | Path, policy: Policy, maps: Mapping[str, str], split: str,
                row_groups: list[int] | None = None, has_text: bool | None = None) -> ReplayData:
    """The requests of a trace file (``row_groups``: of those row groups of a Parquet trace file only,
    ``has_text``: whether every line of the whole file holds its prompt, when reading a part of it)."""
    check_split(split)
    check_maps(policy, maps)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such trace file", source=str(path))
    aliases = text_ladder(policy)
    names = [maps.get(a, a) for a in aliases]
    from cascade.learning.labels import merge_labels
    rows = merge_labels(_records(path, row_groups))       # shadow answers and labels joined to their requests
    hits = sum(1 for doc in rows if doc.get("cache_hit"))
    refused = sum(1 for doc in rows if doc.get("outcome") == "refused")
    # answered from the response cache (no model ran), or refused (a cap, a bad request: no answer to judge)
    rows = [doc for doc in rows if not doc.get("cache_hit") and doc.get("outcome") != "refused"]
    if not rows and row_groups is None:
        but = [f"{hits:,} cache hits" if hits else "", f"{refused:,} refused requests" if refused else ""]
        raise ConfigError(f"{path}: the trace file holds no request" + (" but " + " and ".join(b for b in but if b)
                                                                        if hits or refused else ""), source=str(path))
    if has_text is None:
        has_text = all(isinstance(doc.get("prompt"), str) for doc in rows)
    if split != "all":
        if not has_text:
            raise ConfigError(f"{path}: --split {split} needs the prompt text in every trace line "
                              "(write traces with trace_text=True) — use --split all", source=str(path))
        wanted = set(split.split("+"))
        rows = [doc for doc in rows if split_of(doc["prompt"]) in wanted]
    data = _build(rows, path, aliases, names, has_text, split)
    seen = {a.get("model") for doc in rows for a in doc.get("attempts", ())}
    for alias, name in zip(aliases, names):
        if name not in seen:
            data.notes.append(f"the trace never calls {name!r} (rung {alias!r}): every planned call to it has no "
                              f"outcome (give --map {alias}=TRACED_MODEL if it was recorded under another name)")
    data.notes.append("traces carry no graded quality: quality = the returned answer passed its production checks")
    if hits:
        data.notes.append(f"{hits:,} requests answered from the response cache left out (no model was called; "
                          "the cache report counts them)")
    if refused:
        data.notes.append(f"{refused:,} refused requests left out of quality and cost (a budget cap or a bad "
                          "request refused them: no answer was made)")
    if not has_text:
        data.notes.append("the trace holds no prompt text: the recorded classifier scores are used and checks "
                          "are taken from the recorded check outcomes")
    return data


def _records(path: Path, row_groups: list[int] | None = None) -> Any:
    """The trace records of a JSONL file, or of a Parquet file written by ``cascade traces to-parquet``."""
    from cascade.replay.traceparquet import is_parquet, iter_records
    return iter_records(path, row_groups) if is_parquet(path) else read_jsonl(path)


def read_jsonl(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    raise ConfigError(f"{path}:{lineno}: not a JSON trace line: {exc}", source=str(path)) from None
                if isinstance(doc, dict) and doc.get("kind") in ("shadow", "feedback"):
                    yield doc
                    continue
                if not isinstance(doc, dict) or not isinstance(doc.get("attempts"), list) or "score" not in doc:
                    raise ConfigError(f"{path}:{lineno}: not a cascade trace record (needs score and attempts)",
                                      source=str(path))
                yield doc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read trace file: {exc}", source=str(path)) from None


def _build(rows: list[dict], path: Path, aliases: tuple[str, ...], names: list[str], has_text: bool,
           split: str) -> ReplayData:
    n, r = len(rows), len(aliases)
    available = np.zeros((n, r), dtype=bool)
    missing = np.ones((n, r), dtype=bool)
    quality = np.zeros((n, r))
    cost = np.zeros((n, r))
    completion = np.full((n, r), -1, dtype=np.int64)
    tokens = np.zeros(n, dtype=np.int64)
    responses: list[list[str | None]] = [[None] * n for _ in range(r)]
    checks: list[list[dict | None]] = [[None] * n for _ in range(r)]
    for i, doc in enumerate(rows):
        attempts = [a for a in doc["attempts"] if isinstance(a, dict)]
        tokens[i] = max((int(a.get("prompt_tokens") or 0) for a in attempts), default=0)
        for j, name in enumerate(names):
            mine = [a for a in attempts if a.get("model") == name]
            final = [a for a in mine if a.get("status") in (*_ANSWERED, "error")]
            if not final:
                continue
            last = final[-1]
            missing[i, j] = False
            cost[i, j] = sum(float(a.get("cost_usd") or 0.0) for a in mine)
            if last.get("status") in _ANSWERED:
                available[i, j] = True
                quality[i, j] = float(last.get("quality", 1.0 if last["status"] == "ok" else 0.0))   # a label wins
                completion[i, j] = int(last.get("completion_tokens") or 0)
                checks[j][i] = {c.get("name"): (bool(c.get("passed")), c.get("score"))
                                for c in last.get("checks") or () if isinstance(c, dict)}
                if isinstance(last.get("answer"), str):            # per-attempt text (newer traces)
                    responses[j][i] = last["answer"]
                elif doc.get("model") == name and isinstance(doc.get("answer"), str):
                    responses[j][i] = doc["answer"]
    scores = np.array([float(doc.get("score") or 0.0) for doc in rows])
    return ReplayData(
        kind="traces", sources=(str(path),), aliases=aliases, mappings=(dict(zip(aliases, names)),),
        source=np.zeros(n, dtype=np.int16), ids=[str(doc.get("request_id", i)) for i, doc in enumerate(rows)],
        prompts=[doc["prompt"] for doc in rows] if has_text else None, prompt_tokens=tokens, plan_tokens=tokens.copy(),
        available=available, missing=missing, quality=quality, cost_usd=np.where(available | ~missing, cost, 0.0),
        cost_recorded=~missing, completion_tokens=completion, responses=responses, recorded_checks=checks,
        recorded_scores=scores, split=split, sessions=np.array([doc.get("session_id") for doc in rows], dtype=object),
        session_ts=np.array([float(doc.get("ts") or 0.0) for doc in rows]))
