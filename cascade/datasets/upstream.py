"""Reading a set's upstream files for the converters: CSV and JSONL rows, and the conversion error that
names the file and what is wrong in it."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from cascade.datasets.errors import ConversionError


def bad(path: Path, what: str) -> ConversionError:
    return ConversionError(f"{path.name}: {what} (file {path})")


def csv_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the rows of a CSV file (fields of any length)."""
    csv.field_size_limit(1 << 30)
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or ()), reader


def jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a JSON Lines file; a line that is not a JSON object
    is a ConversionError naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise bad(path, f"not UTF-8 text: {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise bad(path, f"line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise bad(path, f"line {number}: expected a JSON object")
        yield number, record
