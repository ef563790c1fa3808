"""The outcome format as written by this package: table schemas, a row collector, and an all-or-nothing
folder writer (``prompts`` / ``outcomes`` / optional ``responses``, ``answers`` and ``references`` parquet + ``meta.json``).

Column meanings are those of the shared data (``DATA.md``): ``prompt_tokens`` counted with the DeepSeek
tokenizer (:mod:`cascade.tokens`), ``completion_tokens`` estimated as ceil(answer chars / 4) where the
answer text is known, ``cost_usd`` null where the source gives none.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TEXT = pa.large_string()
SCHEMAS = {
    "prompts": pa.schema([("prompt_id", TEXT), ("task", TEXT), ("prompt", TEXT), ("prompt_tokens", pa.int64())]),
    "outcomes": pa.schema([("prompt_id", TEXT), ("model", TEXT), ("score", pa.float64()),
                           ("completion_tokens", pa.int64()), ("cost_usd", pa.float64())]),
    "responses": pa.schema([("prompt_id", TEXT), ("model", TEXT), ("response", TEXT)]),
    "answers": pa.schema([("prompt_id", TEXT), ("model", TEXT), ("answer", TEXT)]),
    # a benchmark's own reference answer per prompt, where the source publishes it (GSM8K's final number)
    "references": pa.schema([("prompt_id", TEXT), ("reference", TEXT)]),
}
TABLES = tuple(SCHEMAS)


def estimated_completion_tokens(text: str | None) -> int | None:
    """ceil(chars / 4), the shared data's estimate; None where no text is known."""
    return None if text is None else -(-len(text) // 4)


@dataclass
class OutcomeRows:
    """Rows of one outcome folder, collected in a deterministic order (the order they are added)."""

    prompts: dict[str, tuple[str, str]] = field(default_factory=dict)     # id -> (task, text), first wins
    outcomes: list[tuple[str, str, float | None, int | None, float | None]] = field(default_factory=list)
    responses: dict[tuple[str, str], str | None] = field(default_factory=dict)  # first wins
    answers: dict[tuple[str, str], str | None] = field(default_factory=dict)    # first wins
    models: dict[str, None] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)                   # first wins

    def add_prompt(self, prompt_id: str, task: str, text: str) -> None:
        self.prompts.setdefault(prompt_id, (task, text))

    def add_outcome(self, prompt_id: str, model: str, score: float | None, completion_tokens: int | None = None,
                    cost_usd: float | None = None) -> None:
        self.outcomes.append((prompt_id, model, score, completion_tokens, cost_usd))
        self.models.setdefault(model)

    def add_response(self, prompt_id: str, model: str, text: str | None) -> None:
        self.responses.setdefault((prompt_id, model), text)

    def add_answer(self, prompt_id: str, model: str, answer: str | None) -> None:
        self.answers.setdefault((prompt_id, model), answer)

    def add_reference(self, prompt_id: str, reference: str) -> None:
        self.references.setdefault(prompt_id, reference)

    def tables(self, prompt_order: list[str] | None = None) -> dict[str, pa.Table]:
        """The parquet tables; prompts in ``prompt_order`` (default: as added), tokens counted here."""
        from cascade.tokens import count_text_tokens
        ids = list(self.prompts) if prompt_order is None else prompt_order
        tasks = [self.prompts[i][0] for i in ids]
        texts = [self.prompts[i][1] for i in ids]
        out = {"prompts": pa.table([ids, tasks, texts, [count_text_tokens(t) for t in texts]],
                                   schema=SCHEMAS["prompts"]),
               "outcomes": pa.table([list(col) for col in zip(*self.outcomes)], schema=SCHEMAS["outcomes"])}
        for name in ("responses", "answers"):
            rows = getattr(self, name)
            if rows:
                keys = list(rows)
                out[name] = pa.table([[k[0] for k in keys], [k[1] for k in keys], list(rows.values())],
                                     schema=SCHEMAS[name])
        if self.references:
            keys = [i for i in ids if i in self.references]
            out["references"] = pa.table([keys, [self.references[k] for k in keys]], schema=SCHEMAS["references"])
        return out


def write_table(table: pa.Table, path: Path, *, compression: str = "zstd", level: int | None = None) -> None:
    """One parquet file, written the same way every time (no schema metadata, one row group)."""
    table = table.replace_schema_metadata(None)
    pq.write_table(table, path, compression=compression, compression_level=level,
                   row_group_size=max(1, table.num_rows), write_statistics=True)


def write_json(doc: Any, path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_folder(tables: dict[str, pa.Table], meta: dict[str, Any], dest: Path, **parquet: Any) -> Path:
    """Write an outcome folder all or nothing: into a temporary sibling, then renamed over ``dest``."""
    tmp = temp_dir_beside(dest)
    try:
        for name, table in tables.items():
            write_table(table, tmp / f"{name}.parquet", **parquet)
        write_json(meta, tmp / "meta.json")
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def temp_dir_beside(dest: Path) -> Path:
    """A new empty directory next to ``dest`` (same file system, so it can be renamed into place), with the
    permissions a plain ``mkdir`` would give it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def replace_dir(new: Path, dest: Path) -> None:
    """Put directory ``new`` at ``dest``; an existing ``dest`` is moved aside first and removed after."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:
        if old is not None:
            os.replace(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
