"""``cascade traces``: commands over Router trace files.

    cascade traces to-parquet IN.jsonl OUT.parquet [--batch-lines N]
"""
from __future__ import annotations

from pathlib import Path

import typer

traces_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Router trace files: convert JSONL to Parquet for out-of-core replay.")


@traces_app.command("to-parquet")
def to_parquet_cmd(src: Path = typer.Argument(..., help="A Router JSONL trace file."),
                   dst: Path = typer.Argument(..., help="The Parquet file to write."),
                   batch_lines: int = typer.Option(50_000, "--batch-lines", min=1,
                                                   help="Trace lines per row group.")) -> None:
    """Convert a JSONL trace file to Parquet once; replay reads it in record batches (--traces OUT.parquet)."""
    from cascade.cli import guard
    from cascade.replay.traceparquet import traces_to_parquet
    count = guard(lambda: traces_to_parquet(src, dst, batch_lines))
    typer.echo(f"wrote {count:,} trace line(s) to {dst}")
