"""The outcome-data sample shipped inside the package (``cascade/datasets/sample/``).

Four outcome folders in the shared format, read by the replay loader like any other: ``mmlu_pro`` (2,000
MMLU-Pro prompts: the whole held-out test split, 1,584, and 416 of the calibration split, with DeepSeek-V2's,
DeepSeek-Coder-V2's, GPT-4o's and Gemini-1.5-Flash's outcomes, extracted answers and answer texts) and 300
prompts of each other shared folder (200 test, 100 calibration; their natural pair). ``sample.json`` records
how it was built; ``SOURCES.md`` names sources and licenses (license texts in ``../LICENSES``). Built by
``python -m cascade.datasets.build_sample --from ../shared/data``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from cascade.datasets.errors import DataError

SAMPLE_ROOT = Path(__file__).with_name("sample")
INDEX_NAME = "sample.json"
DEFAULT_FOLDER = "mmlu_pro"
SPLIT_ORDER = ("test", "calibration", "train")


def ordered_splits(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(split, prompts) in the order test, calibration, train."""
    return sorted(counts.items(), key=lambda kv: SPLIT_ORDER.index(kv[0]) if kv[0] in SPLIT_ORDER else 9)


def folder_names() -> list[str]:
    """The bundled folders, the replay default first."""
    return sorted(sample_index()["folders"], key=lambda name: (name != DEFAULT_FOLDER, name))


@lru_cache(maxsize=1)
def sample_index() -> dict[str, Any]:
    """The build record of the bundled sample (``sample.json``)."""
    path = SAMPLE_ROOT / INDEX_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise DataError(f"the bundled outcome sample is missing from this install ({path}): reinstall "
                        "deepseek-cascade, or give outcome data with --data DIR") from None
    except ValueError as exc:
        raise DataError(f"{path}: the bundled sample's index is not valid JSON ({exc}): reinstall "
                        "deepseek-cascade") from None


def sample_folder(name: str = DEFAULT_FOLDER) -> Path:
    """The path of one bundled sample folder (an outcome folder for ``--data``)."""
    folders = sample_index()["folders"]
    if name not in folders:
        raise DataError(f"the bundled sample has no folder {name!r} (it has {', '.join(folders)})")
    path = SAMPLE_ROOT / name
    if not (path / "prompts.parquet").is_file():
        raise DataError(f"the bundled sample folder {path} is incomplete: reinstall deepseek-cascade")
    return path


def describe_default(split: str | None = None) -> str:
    """The line replay prints first when it runs on the bundled sample (``split``: as given to replay)."""
    entry = sample_index()["folders"][DEFAULT_FOLDER]
    split = split or "test"
    counts = entry["splits"]
    if split == "test":
        which = f"replaying its test split, {counts.get('test', 0):,} prompts: all the test prompts of the shared set"
    else:
        n = sum(counts.get(s, 0) for s in counts) if split == "all" else sum(counts.get(s, 0) for s in split.split("+"))
        which = f"replaying split {split!r}: {n:,} prompts"
    return (f"data: bundled sample, {entry['prompts']:,} MMLU-Pro prompts, DeepSeek-V2 → GPT-4o ({which}). "
            f"Other sample folders and the full sets: cascade data list")
