"""Build the bundled outcome sample from the shared outcome folders:

    python -m cascade.datasets.build_sample --from ../shared/data [--out cascade/datasets/sample]

Same rows every build: in each folder, the prompts of each listed split (``classifiers.splits.split_of``, the
split training, calibration and replay use) are ranked by blake2b(``SALT`` + prompt_id), and the first ones
are kept up to the folder's caps. Nothing depends on the order of the source files or on a random state.
Same bytes every build with the same pyarrow version: rows keep their source order, tables are written
without schema metadata as one zstd row group, JSON with sorted keys. ``sample.json`` records the SHA-256 of
every source file read and every file written, so a rebuild can be compared file by file.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cascade.datasets.errors import DataError
from cascade.datasets.manifest import DataSetSpec

SALT = b"cascade-sample/1:"
SELECTION = ("in each folder, the prompts of each split (classifiers.splits.split_of) ranked by "
             "blake2b('cascade-sample/1:' + prompt_id); the first ones kept up to the folder's caps (mmlu_pro: every "
             "test prompt, then calibration prompts up to 2,000; the others: 200 test + 100 calibration).")
PARQUET = {"compression": "zstd", "level": 19}
TABLES = ("prompts", "outcomes", "responses", "answers")
MMLU_PRO_MODELS = ("DeepSeek-V2-Chat(api,2024-05)", "DeepSeek-Coder-V2_5shots", "gpt-4o-2024-05-13",
                   "gemini-1.5-flash-002_5shots")


@dataclass(frozen=True)
class FolderPlan:
    """What to keep of one shared folder: at most ``caps[split]`` prompts per split (None: all), ``total``
    in all, taken split by split in order; the outcomes (and texts) of ``models`` (default: the pair)."""

    name: str
    caps: tuple[tuple[str, int | None], ...]
    total: int
    models: tuple[str, ...] = ()


PLANS = (
    FolderPlan("mmlu_pro", (("test", None), ("calibration", None)), 2000, MMLU_PRO_MODELS),
    FolderPlan("routellm_mmlu", (("test", 200), ("calibration", 100)), 300),
    FolderPlan("routerbench_subset", (("test", 200), ("calibration", 100)), 300),
    FolderPlan("llmrouter", (("test", 200), ("calibration", 100)), 300),
)


def rank(prompt_id: str) -> bytes:
    return hashlib.blake2b(SALT + prompt_id.encode("utf-8"), digest_size=16).digest()


def choose(ids: Sequence[str], texts: Sequence[str], plan: FolderPlan) -> tuple[set[str], dict[str, int]]:
    """The kept prompt ids and how many of each split."""
    from classifiers.splits import split_of
    by_split: dict[str, list[tuple[bytes, str]]] = {}
    for pid, text in zip(ids, texts):
        by_split.setdefault(split_of(text), []).append((rank(pid), pid))
    kept: set[str] = set()
    counts: dict[str, int] = {}
    for split, cap in plan.caps:
        room = plan.total - len(kept)
        ranked = sorted(by_split.get(split, []))[: room if cap is None else min(cap, room)]
        kept.update(pid for _, pid in ranked)
        counts[split] = len(ranked)
    return kept, counts


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_meta(folder: Path) -> dict[str, Any]:
    import json
    path = folder / "meta.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def build_folder(src: Path, out: Path, plan: FolderPlan, spec: DataSetSpec) -> dict[str, Any]:
    """Write one sample folder into ``out`` (``spec``: its set in the data manifest); returns its entry of
    sample.json."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from cascade.datasets.outcome_format import write_json, write_table
    prompts = pq.read_table(src / "prompts.parquet")
    kept, counts = choose(prompts["prompt_id"].to_pylist(), prompts["prompt"].to_pylist(), plan)
    ids = pa.array(sorted(kept), type=prompts.schema.field("prompt_id").type)
    pair = (spec.cheap, spec.strong)
    models = plan.models or pair
    out.mkdir(parents=True)
    entry: dict[str, Any] = {"prompts": len(kept), "splits": counts, "models": list(models),
                             "cheap": pair[0], "strong": pair[1], "source_sha256": {}, "files": {}}
    for name in TABLES:
        path = src / f"{name}.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path)
        mask = pc.is_in(table["prompt_id"], value_set=ids)
        if name != "prompts":
            wanted = pa.array(models, type=table.schema.field("model").type)
            mask = pc.and_(mask, pc.is_in(table["model"], value_set=wanted))
        table = table.filter(mask)
        write_table(table, out / path.name, **PARQUET)
        entry["source_sha256"][path.name] = sha256_file(path)
        entry["files"][path.name] = {"rows": table.num_rows}
    meta = _read_meta(src)
    for key, value in (("cheap", pair[0]), ("strong", pair[1])):
        if meta.get(key, value) != value:
            raise DataError(f"{src}/meta.json: {key} is {meta[key]!r}, the data manifest says {value!r}")
    if spec.aliases:
        meta["aliases"] = {a: m for a, m in spec.aliases if m in models}
    meta.update(cheap=pair[0], strong=pair[1], prompts=len(kept), models=len(models),
                sample_of={"folder": src.name, "prompts": prompts.num_rows, "splits": counts,
                           "selection": SELECTION})
    write_json(meta, out / "meta.json")
    for file in sorted(out.iterdir()):
        entry["files"].setdefault(file.name, {}).update(bytes=file.stat().st_size, sha256=sha256_file(file))
    return entry


def build(src_root: Path, out: Path) -> dict[str, Any]:
    """Build the whole sample into ``out`` (replaced all at once); returns the sample.json document."""
    import pyarrow

    from cascade.datasets.manifest import load_manifest
    from cascade.datasets.outcome_format import replace_dir, temp_dir_beside, write_json
    from cascade.datasets.sources import sources_markdown
    manifest = load_manifest()
    missing = [p.name for p in PLANS if not (src_root / p.name / "prompts.parquet").is_file()]
    if missing:
        raise DataError(f"{src_root}: no outcome folder(s) {', '.join(missing)} (expected the shared data)")
    tmp = temp_dir_beside(out)
    try:
        folders = {}
        for plan in PLANS:
            folders[plan.name] = build_folder(src_root / plan.name, tmp / plan.name, plan, manifest[plan.name])
        index = {"built_by": "python -m cascade.datasets.build_sample --from ../shared/data",
                 "pyarrow": pyarrow.__version__, "parquet": PARQUET, "folders": folders,
                 "selection": SELECTION}
        write_json(index, tmp / "sample.json")
        (tmp / "SOURCES.md").write_text(sources_markdown(index, manifest), encoding="utf-8")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return index


def main(argv: Sequence[str] | None = None) -> int:
    from cascade.datasets.sample import SAMPLE_ROOT
    parser = argparse.ArgumentParser(prog="python -m cascade.datasets.build_sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="src", type=Path, required=True, help="the shared data folder (../shared/data)")
    parser.add_argument("--out", type=Path, default=SAMPLE_ROOT, help=f"where to write the sample (default {SAMPLE_ROOT})")
    args = parser.parse_args(argv)
    try:
        index = build(args.src, args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(f["bytes"] for folder in index["folders"].values() for f in folder["files"].values())
    for name, entry in index["folders"].items():
        print(f"{name}: {entry['prompts']:,} prompts {entry['splits']} x {len(entry['models'])} models")
    print(f"wrote {args.out} ({total / 1e6:.2f} MB of data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
