"""Router JSONL traces converted once to Parquet, and read back in record batches.

    cascade traces to-parquet IN.jsonl OUT.parquet

One row per trace line: ``request_id``, ``score``, ``prompt`` (null when the sink kept no text, and on
lines of another kind), ``record`` (the line's JSON object, re-serialised) and ``kind`` (null for a
request; ``shadow`` / ``feedback`` lines are kept). Lines are streamed in batches of ``batch_lines``
(one row group each), so converting never holds the requests of the whole file; replay reads the
Parquet file batch by batch (:func:`iter_records`) into the same records the JSONL reader yields.
Shadow and feedback lines (a sample of the traffic, held in memory between two passes) are written
right after their request, in its row group, so a replay of one part of the file still joins its labels;
those whose request is not in the file come last.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from policies.errors import ConfigError

BATCH_LINES = 50_000
COLUMNS = ("request_id", "score", "prompt", "record", "kind")
KINDS = ("shadow", "feedback")          # lines beside the requests', linked by request_id


def _schema() -> Any:
    import pyarrow as pa
    return pa.schema([("request_id", pa.large_string()), ("score", pa.float64()), ("prompt", pa.large_string()),
                      ("record", pa.large_string()), ("kind", pa.string())])


def _batch(docs: list[dict[str, Any]]) -> Any:
    import pyarrow as pa
    return pa.record_batch([
        pa.array([None if d.get("request_id") is None else str(d["request_id"]) for d in docs], pa.large_string()),
        pa.array([float(d.get("score") or 0.0) for d in docs], pa.float64()),
        pa.array([d["prompt"] if isinstance(d.get("prompt"), str) and not d.get("kind") else None for d in docs],
                 pa.large_string()),
        pa.array([json.dumps(d, ensure_ascii=False) for d in docs], pa.large_string()),
        pa.array([d.get("kind") if d.get("kind") in KINDS else None for d in docs], pa.string()),
    ], schema=_schema())


def _ordered(src: Path) -> Iterator[list[dict[str, Any]]]:
    """Per request of ``src``, its line followed by its shadow / feedback lines; then the lines of
    another kind whose request is not in the file (each group one list)."""
    from cascade.replay.traces import read_jsonl
    beside: dict[Any, list[dict[str, Any]]] = {}
    for doc in read_jsonl(src):
        if doc.get("kind") in KINDS:
            beside.setdefault(doc.get("request_id"), []).append(doc)
    for doc in read_jsonl(src):
        if doc.get("kind") not in KINDS:
            yield [doc, *beside.pop(doc.get("request_id"), ())] if doc.get("request_id") in beside else [doc]
    for docs in beside.values():
        yield docs


def traces_to_parquet(src: str | Path, dst: str | Path, batch_lines: int = BATCH_LINES) -> int:
    """Convert the JSONL trace file ``src`` to ``dst``; return the number of trace lines written."""
    import pyarrow.parquet as pq

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ConfigError(f"{src}: no such trace file", source=str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    count, docs, requests = 0, [], 0
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with pq.ParquetWriter(tmp, _schema()) as writer:
            for group in _ordered(src):
                docs += group
                requests += group[0].get("kind") not in KINDS
                if len(docs) >= batch_lines:
                    writer.write_batch(_batch(docs))
                    count, docs = count + len(docs), []
            if docs:
                writer.write_batch(_batch(docs))
                count += len(docs)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    if not requests:
        dst.unlink(missing_ok=True)
        raise ConfigError(f"{src}: the trace file holds no request", source=str(src))
    return count


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def row_group_parts(path: Path, rows: int) -> tuple[list[list[int]], bool]:
    """Consecutive row groups of about ``rows`` trace lines each (at least one group a part), and whether
    every line of the file holds its prompt text."""
    import pyarrow.parquet as pq
    pf = pq.ParquetFile(path)
    parts: list[list[int]] = []
    count = rows
    for g in range(pf.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if count + n > rows and count:
            parts.append([])
            count = 0
        parts[-1].append(g)
        count += n
    return parts, pf.metadata.num_rows > 0 and all(_no_null_prompt(pf, g) for g in range(pf.num_row_groups))


def _no_null_prompt(pf: Any, group: int) -> bool:
    """Whether every line of a row group holds its prompt (the column statistics, else the column)."""
    if "prompt" not in pf.schema_arrow.names:
        return False
    names = pf.schema_arrow.names
    if "kind" in names:                   # lines of another kind hold no prompt: count the requests' only
        import pyarrow.compute as pc
        table = pf.read_row_group(group, columns=["prompt", "kind"])
        missing = pc.and_(table.column("prompt").is_null(), table.column("kind").is_null())
        return not pc.any(missing).as_py()
    meta = pf.metadata.row_group(group).column(names.index("prompt"))
    if meta.statistics is not None and meta.statistics.has_null_count:
        return meta.statistics.null_count == 0
    return pf.read_row_group(group, columns=["prompt"]).column("prompt").null_count == 0


def iter_records(path: Path, row_groups: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """The trace records of a converted file (of some of its row groups), batch by batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        if "record" not in pf.schema_arrow.names:
            raise ConfigError(f"{path}: not a converted trace file (no 'record' column; "
                              "convert JSONL with: cascade traces to-parquet IN.jsonl OUT.parquet)", source=str(path))
        for batch in pf.iter_batches(columns=["record"], row_groups=row_groups):
            for k, text in enumerate(batch.column("record").to_pylist()):
                doc = json.loads(text) if text else None
                if isinstance(doc, dict) and doc.get("kind") in KINDS:
                    yield doc
                    continue
                if not isinstance(doc, dict) or not isinstance(doc.get("attempts"), list) or "score" not in doc:
                    raise ConfigError(f"{path}: row {k} of a batch is not a cascade trace record", source=str(path))
                yield doc
    except (pa.ArrowException, OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: cannot read trace file: {type(exc).__name__}: {exc}", source=str(path)) from None
