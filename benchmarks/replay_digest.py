"""The replay report of a folder as a digest (every figure but the timings), to compare two checkouts.

    python benchmarks/replay_digest.py FOLDER [--split all] [--chunk-rows N] [--engine local|dask]
    PYTHONPATH=/path/to/other/checkout python benchmarks/replay_digest.py FOLDER     # the same on another version

Prints the digest, the data's identity, the policy row's quality and total $, wall and CPU seconds and
peak RSS. The report names its data folder by path; the digest names it by content instead — the
folder's name and a fingerprint of its tables (``meta.json`` and every ``*.parquet``, byte for byte) —
so the same data in two places (two checkouts, two machines) gives the same digest, and data that
differs in one score gives another.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time
from pathlib import Path
from typing import Any, Sequence

_CHUNK = 1 << 20


def content_identity(folder: str | os.PathLike[str]) -> str:
    """``NAME@FINGERPRINT``: the folder's name and a sha256 over its tables' names and bytes."""
    folder = Path(folder)
    tables = sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix == ".parquet" or p.name == "meta.json"))
    whole = hashlib.sha256()
    for path in tables:
        one = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                one.update(chunk)
        whole.update(f"{path.name}\0{one.hexdigest()}\n".encode())
    return f"{folder.name}@{whole.hexdigest()[:16]}"


def without_paths(doc: Any, folder: str | os.PathLike[str]) -> Any:
    """``doc`` with every mention of ``folder``'s path (as given, and resolved) replaced by its content
    identity, in keys and values alike."""
    identity = content_identity(folder)
    spellings = sorted({str(Path(folder)), str(Path(folder).resolve())}, key=len, reverse=True)

    def swap(x: Any) -> Any:
        if isinstance(x, str):
            for path in spellings:
                x = x.replace(path, identity)
            return x
        if isinstance(x, dict):
            return {swap(k): swap(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [swap(v) for v in x]
        return x
    return swap(doc)


def report_digest(doc: dict, folder: str | os.PathLike[str]) -> str:
    """The digest of a replay report of ``folder`` (its timings left out)."""
    doc = without_paths({k: v for k, v in doc.items() if k != "timings_s"}, folder)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--split", default="all")
    ap.add_argument("--chunk-rows", type=int)
    ap.add_argument("--engine", default="local")
    args = ap.parse_args(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from cascade.replay.run import replay_report
    engine = {} if args.engine == "local" and not args.chunk_rows else {"engine": args.engine,
                                                                         "chunk_rows": args.chunk_rows}
    t = time.perf_counter()
    doc = replay_report(args.policy, [args.folder], split=args.split, **engine)
    wall = time.perf_counter() - t
    me = resource.getrusage(resource.RUSAGE_SELF)
    policy = doc["rows"]["policy"]
    print(f"digest {report_digest(doc, args.folder)}  data {content_identity(args.folder)}  "
          f"quality {policy['quality']!r}  total_usd {policy['total_usd']!r}  wall {wall:.1f} s  "
          f"cpu {me.ru_utime + me.ru_stime:.1f} s  peak_rss {me.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
