"""Out of core, step one: an outcome folder cut into partitions of at most ``part_rows`` prompts, each a
small outcome folder of its own (prompts / outcomes / responses parquet + meta.json) that the in-memory
reader loads as it loads any folder.

One streaming pass per table, in record batches (memory: one batch and the kept prompt ids, never the
texts of the whole folder): the prompts of the split go, in file order, to partition
``position // part_rows``; each outcome and response row of a mapped model follows its prompt (its
rows keep their file order, so duplicates average as in the in-memory reader). The partitions are
written under ``out`` (any directory the replay workers can read: a local temp dir, or a shared
filesystem for a cluster).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from classifiers.splits import split_of
from policies.errors import ConfigError
from policies.schema import Policy

from cascade.replay.arrow import BATCH_ROWS, THREADS, open_columns, models_in
from cascade.replay.data import require_folder, check_split, policy_needs_responses, read_meta, resolve_mapping

PART_ROWS = 32_768          # prompts per partition by default


class _Writers:
    """One Parquet writer per partition, opened on its first rows; partitions without rows get an empty file."""

    def __init__(self, dirs: list[Path], name: str) -> None:
        self.dirs, self.name = dirs, name
        self.open: dict[int, pq.ParquetWriter] = {}
        self.schema: pa.Schema | None = None

    def write(self, part: int, table: pa.Table | pa.RecordBatch) -> None:
        if self.schema is None:
            self.schema = table.schema
        if part not in self.open:
            self.open[part] = pq.ParquetWriter(self.dirs[part] / self.name, self.schema)
        self.open[part].write(table)

    def close(self, schema: pa.Schema) -> None:
        for w in self.open.values():
            w.close()
        for k, d in enumerate(self.dirs):
            if k not in self.open:
                pq.write_table((self.schema or schema).empty_table(), d / self.name)


def _scatter(writers: _Writers, batch: pa.RecordBatch, parts: np.ndarray) -> None:
    for k in np.unique(parts).tolist():
        writers.write(int(k), batch.filter(pa.array(parts == k)))


def _spill_prompts(path: Path, split: str, part_rows: int, out: Path, stem: str) -> tuple[pa.Array, list[Path]]:
    """Write the split's prompts to partitions; return their ids (in order) and the partition dirs."""
    pf, cols = open_columns(path, ("prompt_id", "prompt", "prompt_tokens"))
    total = pf.metadata.num_rows
    dirs = [out / f"{stem}-{k:05d}" for k in range(max(1, -(-total // part_rows)))]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    writers, ids, seen = _Writers(dirs, "prompts.parquet"), [], 0
    wanted = None if split == "all" else set(split.split("+"))
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols, use_threads=THREADS):
        if wanted is not None:
            keep = [split_of(t or "") in wanted for t in batch.column("prompt").to_pylist()]
            batch = batch.filter(pa.array(keep, pa.bool_()))
        parts = (seen + np.arange(batch.num_rows)) // part_rows
        _scatter(writers, batch, parts)
        ids.append(pc.cast(batch.column("prompt_id"), pa.large_string()))
        seen += batch.num_rows
    used = dirs[:max(1, -(-seen // part_rows))]
    writers.dirs = used
    writers.close(pf.schema_arrow)
    for d in dirs[len(used):]:
        shutil.rmtree(d)
    all_ids = pa.concat_arrays(ids) if ids else pa.array([], pa.large_string())
    if pc.count_distinct(all_ids).as_py() != len(all_ids):
        raise ConfigError(f"{path}: prompt_id values are not unique", source=str(path))
    return all_ids, used


def _spill_rows(path: Path, ids: pa.Array, models: list[str], part_rows: int, dirs: list[Path],
                required: tuple[str, ...], optional: tuple[str, ...], batch_rows: int) -> set[str]:
    """Write the rows of ``models`` whose prompt is kept to their prompt's partition; return the models seen."""
    pf, cols = open_columns(path, required, optional)
    writers, seen = _Writers(dirs, path.name), set()
    wanted = pa.array(models, type=pa.large_string())
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols, use_threads=THREADS):
        batch = batch.filter(pc.is_in(pc.cast(batch.column("model"), pa.large_string()), value_set=wanted))
        rows = pc.index_in(pc.cast(batch.column("prompt_id"), pa.large_string()), value_set=ids)
        batch = batch.filter(rows.is_valid())
        if batch.num_rows:
            seen.update(pc.unique(batch.column("model")).to_pylist())
            _scatter(writers, batch, pc.drop_null(rows).to_numpy() // part_rows)
    writers.close(pf.schema_arrow.empty_table().select(cols).schema)
    return seen


def spill_folder(folder: Path, index: int, policy: Policy, maps: Mapping[str, str], split: str,
                 out: Path, part_rows: int = PART_ROWS) -> list[Path]:
    """Cut ``folder`` into partition folders under ``out``; return them in order."""
    check_split(split)
    if part_rows < 1:
        raise ConfigError(f"--chunk-rows {part_rows}: must be at least 1")
    require_folder(folder)
    meta_path = folder / "meta.json"
    mapping = resolve_mapping(policy, read_meta(folder), maps, str(folder))
    models = list(dict.fromkeys(mapping.values()))
    stem = f"{index:03d}"
    try:
        ids, dirs = _spill_prompts(folder / "prompts.parquet", split, part_rows, out, stem)
        seen = _spill_rows(folder / "outcomes.parquet", ids, models, part_rows, dirs, ("prompt_id", "model", "score"),
                           ("completion_tokens", "cost_usd"), BATCH_ROWS)
        if policy_needs_responses(policy) and (folder / "responses.parquet").is_file():
            _spill_rows(folder / "responses.parquet", ids, models, part_rows, dirs, ("prompt_id", "model", "response"),
                        (), BATCH_ROWS // 4)
    except ConfigError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ConfigError(f"{folder}: cannot read the outcome folder: {type(exc).__name__}: {exc}",
                          source=str(folder)) from None
    absent = [m for m in models if m not in seen]
    if absent and len(ids):
        path = folder / "outcomes.parquet"
        raise ConfigError(f"{path}: no outcome of model(s) {', '.join(map(repr, absent))} for the prompts of the split; "
                          f"models in the file: {', '.join(map(repr, models_in(pq.ParquetFile(path))))}",
                          source=str(path))
    for d in dirs:
        if meta_path.is_file():
            shutil.copyfile(meta_path, d / "meta.json")
    return dirs
