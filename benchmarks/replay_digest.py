"""The replay report of a folder as a digest (every figure but the timings), to compare two checkouts.

    python benchmarks/replay_digest.py FOLDER [--split all] [--chunk-rows N] [--engine local|dask]
    PYTHONPATH=/path/to/other/checkout python benchmarks/replay_digest.py FOLDER     # the same on another version

Prints the digest, the policy row's quality and total $, wall and CPU seconds and peak RSS.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--split", default="all")
    ap.add_argument("--chunk-rows", type=int)
    ap.add_argument("--engine", default="local")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from cascade.replay.run import replay_report
    engine = {} if args.engine == "local" and not args.chunk_rows else {"engine": args.engine,
                                                                         "chunk_rows": args.chunk_rows}
    t = time.perf_counter()
    doc = replay_report(args.policy, [args.folder], split=args.split, **engine)
    wall = time.perf_counter() - t
    doc.pop("timings_s")
    me = resource.getrusage(resource.RUSAGE_SELF)
    policy = doc["rows"]["policy"]
    print(f"digest {hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]}  "
          f"quality {policy['quality']!r}  total_usd {policy['total_usd']!r}  wall {wall:.1f} s  "
          f"cpu {me.ru_utime + me.ru_stime:.1f} s  peak_rss {me.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
