"""Streaming readers of the outcome tables (pyarrow ``iter_batches``; only the needed columns and rows).

* prompts: ``prompt_id``, ``prompt``, ``prompt_tokens`` of the prompts in the split;
* outcomes: rows of the mapped models whose prompt is kept, folded into (prompt x model) matrices
  (duplicate rows averaged, nulls = unknown);
* responses: the mapped models' answer texts of the kept prompts.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from classifiers.splits import split_of
from policies.errors import ConfigError

BATCH_ROWS = 131_072
Tick = Callable[[str], None] | None


@dataclass
class Prompts:
    ids: list[str]
    texts: list[str]
    tokens: np.ndarray          # float64
    ids_array: pa.Array


@dataclass
class Outcomes:
    models: list[str]
    score: np.ndarray           # (N, M) NaN = no outcome
    completion: np.ndarray      # (N, M) NaN = unknown
    cost: np.ndarray            # (N, M) NaN = not in the data


def open_columns(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> tuple[pq.ParquetFile, list[str]]:
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    missing = [c for c in required if c not in names]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}", source=str(path))
    return pf, [*required, *(c for c in optional if c in names)]


def _floats(column: Any) -> np.ndarray:
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)


def read_prompts(path: Path, split: str, tick: Tick = None) -> Prompts:
    pf, cols = open_columns(path, ("prompt_id", "prompt", "prompt_tokens"))
    ids: list[str] = []
    texts: list[str] = []
    tokens: list[np.ndarray] = []
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
        batch_texts = [t or "" for t in batch.column("prompt").to_pylist()]
        batch_ids = batch.column("prompt_id").to_pylist()
        batch_tokens = np.nan_to_num(_floats(batch.column("prompt_tokens")))
        if split != "all":
            wanted = set(split.split("+"))
            keep = np.fromiter((split_of(t) in wanted for t in batch_texts), dtype=bool, count=len(batch_texts))
            batch_texts = [t for t, k in zip(batch_texts, keep) if k]
            batch_ids = [p for p, k in zip(batch_ids, keep) if k]
            batch_tokens = batch_tokens[keep]
        ids += [str(p) for p in batch_ids]
        texts += batch_texts
        tokens.append(batch_tokens)
        if tick:
            tick("prompts")
    ids_array = pa.array(ids, type=pa.large_string())
    if pc.count_distinct(ids_array).as_py() != len(ids):
        raise ConfigError(f"{path}: prompt_id values are not unique", source=str(path))
    return Prompts(ids, texts, np.concatenate(tokens) if tokens else np.zeros(0), ids_array)


def read_outcomes(path: Path, ids: pa.Array, models: list[str], tick: Tick = None, strict: bool = True) -> Outcomes:
    pf, cols = open_columns(path, ("prompt_id", "model", "score"), ("completion_tokens", "cost_usd"))
    n, m = len(ids), len(models)
    sums = {k: np.zeros((n, m)) for k in ("score", "completion_tokens", "cost_usd")}
    counts = {k: np.zeros((n, m)) for k in sums}
    wanted = pa.array(models, type=pa.large_string())
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
        model_col = pc.cast(batch.column("model"), pa.large_string())
        batch = batch.filter(pc.is_in(model_col, value_set=wanted))
        if batch.num_rows:
            _fold(batch, ids, wanted, sums, counts)
        if tick:
            tick("outcomes")
    seen = counts["score"].sum(axis=0) > 0
    if strict and not seen.all() and n:
        absent = [mm for mm, s in zip(models, seen) if not s]
        raise ConfigError(f"{path}: no outcome of model(s) {', '.join(map(repr, absent))} for the prompts of the split; "
                          f"models in the file: {', '.join(map(repr, models_in(pf)))}", source=str(path))
    with np.errstate(invalid="ignore", divide="ignore"):
        mats = {k: np.where(counts[k] > 0, sums[k] / counts[k], np.nan) for k in sums}
    return Outcomes(list(models), mats["score"], mats["completion_tokens"], mats["cost_usd"])


def _fold(batch: pa.RecordBatch, ids: pa.Array, wanted: pa.Array, sums: dict, counts: dict) -> None:
    rows = pc.index_in(pc.cast(batch.column("prompt_id"), pa.large_string()), value_set=ids)
    kept = rows.is_valid()
    batch = batch.filter(kept)
    if not batch.num_rows:
        return
    r = pc.drop_null(rows).to_numpy().astype(np.int64)
    c = pc.index_in(pc.cast(batch.column("model"), pa.large_string()), value_set=wanted).to_numpy().astype(np.int64)
    for key in sums:
        if key not in batch.schema.names:
            continue
        vals = _floats(batch.column(key))
        ok = ~np.isnan(vals)
        np.add.at(sums[key], (r[ok], c[ok]), vals[ok])
        np.add.at(counts[key], (r[ok], c[ok]), 1.0)


def models_in(pf: pq.ParquetFile) -> list[str]:
    found: set[str] = set()
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=["model"]):
        found.update(pc.unique(batch.column("model")).to_pylist())
    return sorted(found)


def row_groups_holding(pf: pq.ParquetFile, column: str, values: list[str]) -> list[int]:
    """The row groups whose ``column`` statistics (min / max) leave room for one of ``values`` (all the
    groups without statistics): the others hold none of their rows, so their texts are never decoded."""
    at = pf.schema_arrow.get_field_index(column)
    keep = []
    for g in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(g).column(at).statistics
        if stats is None or not stats.has_min_max or not isinstance(stats.min, str) or \
                any(stats.min <= v <= stats.max for v in values):
            keep.append(g)
    return keep


def unwrap_response(text: str | None) -> str | None:
    """A response some data sets store as the Python repr of a one-item list of strings (RouterBench:
    ``"['C\\n']"``), read as the string it holds; any other text as it is."""
    if not text or not (text.startswith(("['", '["')) and text.endswith(("']", '"]'))):
        return text
    import ast
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "".join(value)
    return text


def read_responses(path: Path, ids: pa.Array, models: list[str], tick: Tick = None) -> list[list[str | None]]:
    """Per model (in ``models`` order), the response text of each kept prompt (None where absent)."""
    pf, cols = open_columns(path, ("prompt_id", "model", "response"))
    out: list[list[str | None]] = [[None] * len(ids) for _ in models]
    wanted = pa.array(models, type=pa.large_string())
    groups = row_groups_holding(pf, "model", models)
    for batch in pf.iter_batches(batch_size=BATCH_ROWS // 4, columns=cols, row_groups=groups):
        model_col = pc.cast(batch.column("model"), pa.large_string())
        batch = batch.filter(pc.is_in(model_col, value_set=wanted))
        rows = pc.index_in(pc.cast(batch.column("prompt_id"), pa.large_string()), value_set=ids)
        batch = batch.filter(rows.is_valid())
        if batch.num_rows:
            r = pc.drop_null(rows).to_numpy()
            c = pc.index_in(pc.cast(batch.column("model"), pa.large_string()), value_set=wanted).to_numpy()
            for i, j, text in zip(r.tolist(), c.tolist(), batch.column("response").to_pylist()):
                out[j][i] = unwrap_response(text)
        if tick:
            tick("responses")
    return out
