"""Replay throughput: >= 1M outcome rows replayed with a 101-point threshold sweep, in memory, out of core
and on Dask, wall time and peak RSS; then the scaling of the out-of-core replay to a 20M-row folder.

    python benchmarks/bench_replay.py [--copies 4] [--policy default] [--classifier NAME] [--keep DIR]
                                      [--scale-copies 61] [--no-scale] [--no-dask] [--chunk-rows 32768]

Builds a synthetic outcome folder in a temp dir from the real MMLU-Pro tables: the 10,683 prompts repeated
``--copies`` times with new ids, each copy's scores and completion tokens shuffled per model (31 models:
4 copies = 1.32M outcome rows), the DeepSeek-V2 / GPT-4o responses repeated beside them (written copy by
copy: the builder's memory does not grow with the copies). Then, each in a fresh process,
``replay_report(policy, [folder], split="all", full_sweep=FULL)`` with

* ``memory``: the whole folder read at once (streaming the Parquet tables, the policy classifier's batch
  scoring once per distinct prompt text, the answer checks on the recorded responses, the per-request
  engine replay, the vectorised 101-point sweep, the report);
* ``local``: out of core, ``engine="local", chunk_rows=N`` (partition folders of N prompts, replayed one
  after another, numbers merged);
* ``dask``: partitions on a ``LocalCluster`` of 2 worker processes (``engine="dask"``), one per worker.
  Each worker scores its partition's distinct texts; the one-process engines also remember scores across
  partitions, which this folder's repeated texts favour.

Wall time (process start to report) and peak RSS (``resource.getrusage``, the replay process; for dask
also its worker processes) are printed with the stage timings and a digest of the report (every figure
but the timings: the three must be equal), beside two peers measured in the memory run on the same
arrays: the per-request ``decide()`` replay repeated at each of the 101 thresholds (extrapolated from
one pass), and ``classifiers.metrics.cascade_sweep`` (a numpy loop over the 101 thresholds, no engine
rules). Finally the out-of-core replay of a ``--scale-copies`` folder (61 copies = 20.1M rows, in /tmp).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import data_dir

ROW_GROUP = 131_072
PROMPT_GROUP = 16_384
PROMPTS = 10_683                 # rows of MMLU-Pro's prompts.parquet (one copy)

CHILD = r"""
import hashlib, json, math, resource, sys, time
t0 = time.perf_counter()
from cascade.replay.run import run_replay
from cascade.replay.report import build_report
policy, folder, classifier, full, mode, chunk = sys.argv[1:7]
full, chunk = full == "1", int(chunk)
def main():
    scorer = None
    if classifier:
        from classifiers import load_classifier
        scorer = load_classifier(classifier)
    engine = {} if mode == "memory" else {"engine": mode, "chunk_rows": chunk, "workers": 2}
    run = run_replay(policy, [folder], split="all", full_sweep=full, classifier=scorer, **engine)
    doc = build_report(run)
    wall = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, cpu = max(me.ru_maxrss, kids.ru_maxrss), me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    import numpy as np
    from classifiers import metrics
    from cascade.replay.sweep import GRID
    d, peer_numpy = run.data, None
    if mode == "memory":
        t = time.perf_counter()
        metrics.cascade_sweep(run.scores, np.zeros(len(d)), d.quality[:, 0], d.quality[:, -1], d.cost_usd[:, 0],
                              d.cost_usd[:, -1], t1_grid=GRID, t2_grid=[math.inf])
        peer_numpy = time.perf_counter() - t
    timings = doc.pop("timings_s")
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    print(json.dumps({"wall_in_process_s": wall, "rss_kb": rss, "cpu_s": cpu, "timings": run.timings, "n": len(d),
                      "distinct_texts": len(set(d.prompts)) if d.prompts is not None else None,
                      "score_source": run.score_source, "digest": digest,
                      "points": len(doc["sweep"]["points"]["t1"]), "equal": doc["engine_equals_vectorised"],
                      "peer_numpy_sweep_s": peer_numpy, "quality": doc["rows"]["policy"]["quality"]}))
if __name__ == "__main__":
    main()
"""


def _writer(path: Path, table: "object") -> "object":
    import pyarrow.parquet as pq
    return pq.ParquetWriter(path, table.schema)


def build_folder(out: Path, copies: int, seed: int = 0) -> int:
    """Write the synthetic folder copy by copy; return its number of outcome rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = data_dir("mmlu_pro")
    rng, order_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    prompts = pq.read_table(src / "prompts.parquet")
    outcomes = pq.read_table(src / "outcomes.parquet")
    responses = pq.read_table(src / "responses.parquet")
    models = outcomes.column("model").to_numpy(zero_copy_only=False)
    by_model = [np.flatnonzero(models == m) for m in np.unique(models)]
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, object] = {}
    rows = 0
    for k in range(copies):
        new_id = lambda col: pa.array([f"c{k}-{x}" for x in col.to_pylist()], pa.large_string())  # noqa: E731
        score = outcomes.column("score").to_numpy().copy()
        tokens = outcomes.column("completion_tokens").to_numpy().copy()
        if k:
            for idx in by_model:
                perm = rng.permutation(idx)
                score[idx], tokens[idx] = score[perm], tokens[perm]
        table = pa.table({"prompt_id": new_id(outcomes.column("prompt_id")), "model": outcomes.column("model"),
                          "score": score, "completion_tokens": tokens, "cost_usd": outcomes.column("cost_usd")})
        parts = {"prompts.parquet": (prompts.set_column(0, "prompt_id", new_id(prompts.column("prompt_id"))), PROMPT_GROUP),
                 "outcomes.parquet": (table.take(order_rng.permutation(table.num_rows)), ROW_GROUP),  # models interleaved
                 "responses.parquet": (responses.set_column(0, "prompt_id", new_id(responses.column("prompt_id"))),
                                       ROW_GROUP // 4)}
        for name, (t, group) in parts.items():
            if name not in writers:
                writers[name] = _writer(out / name, t)
            writers[name].write_table(t, row_group_size=group)                       # type: ignore[attr-defined]
        rows += table.num_rows
    for w in writers.values():
        w.close()                                                                       # type: ignore[attr-defined]
    (out / "meta.json").write_text((src / "meta.json").read_text())
    return rows


def run_child(args: argparse.Namespace, folder: Path, mode: str, chunk_rows: int | None = None) -> dict:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    root = Path(__file__).resolve().parents[1]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, args.policy, str(folder), args.classifier,
                           "1" if args.full else "0", mode, str(chunk_rows or args.chunk_rows)],
                          capture_output=True, text=True, env=env, cwd=root)
    wall = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(proc.stderr)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    child["wall"], child["peak_mb"] = wall, child["rss_kb"] / 1024
    return child


def report_memory(child: dict, rows: int, built: float, args: argparse.Namespace) -> None:
    timings = child["timings"]
    print(f"synthetic folder: {rows:,} outcome rows, {child['n']:,} prompts ({child['distinct_texts']:,} distinct "
          f"texts) x 31 models, built in {built:.1f} s")
    print(f"policy {args.policy!r}, scores: {child['score_source']}, sweep: {child['points']} points, "
          f"engine == vectorised: {child['equal']}\n")
    print(f"{'replay, process start to report (wall)':48s} {child['wall']:8.2f} s   (bar: <= 10 s)")
    print(f"{'CPU time of the replay process (user + sys)':48s} {child['cpu_s']:8.2f} s   (aim: <= 8 s, so that a "
          "quiet machine is within the wall bar; load inflates it less than wall)")
    print(f"{'peak RSS of the replay process':48s} {child['peak_mb']:8.0f} MB  (bar: <= 2048 MB)")
    for name, secs in timings.items():
        print(f"  {name:46s} {secs:8.2f} s")
    print(f"  {'imports + report (rest)':46s} {child['wall_in_process_s'] - sum(timings.values()):8.2f} s")
    print(f"{'replay without the classifier scoring':48s} {child['wall'] - timings['classifier']:8.2f} s")
    print(f"\n{'101-point sweep, ours (vectorised engine rule)':48s} {timings['sweep']:8.3f} s")
    print(f"{'101-point sweep, decide() replay x 101 (est.)':48s} {timings['engine_replay'] * 101:8.3f} s")
    print(f"{'101-point sweep, classifiers.metrics.cascade_sweep':48s} {child['peer_numpy_sweep_s']:8.3f} s"
          "   (no budget/ladder rules)")


def side_by_side(results: dict[str, dict], rows: int) -> None:
    print(f"\n{'engine':34s} {'wall s':>8s} {'rows/s':>12s} {'CPU s':>8s} {'peak RSS MB':>12s}  report digest")
    for mode, r in results.items():
        print(f"{mode:34s} {r['wall']:8.2f} {rows / r['wall']:12,.0f} {r['cpu_s']:8.2f} {r['peak_mb']:12.0f}  {r['digest']}")
    digests = {r["digest"] for r in results.values()}
    print(f"same report from every engine: {len(digests) == 1}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of MMLU-Pro (4 = 42,732 prompts, 1.32M rows)")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--classifier", default="", help="score with this classifier instead of the policy's")
    ap.add_argument("--keep", type=Path, help="build the folder here and keep it")
    ap.add_argument("--full", action="store_true",
                    help="also sweep the answer-checker threshold (101 x 101 points; the bar is for 101 points)")
    ap.add_argument("--chunk-rows", type=int, default=32_768, help="prompts per partition (local / dask)")
    ap.add_argument("--scale-copies", type=int, default=61, help="copies of the scaling folder (61 = 20.1M rows)")
    ap.add_argument("--no-scale", action="store_true", help="skip the 20M-row scaling run")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask run")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "synthetic"
        t = time.perf_counter()
        rows = build_folder(folder, args.copies)
        built = time.perf_counter() - t
        results = {"memory (all at once)": run_child(args, folder, "memory")}
        report_memory(results["memory (all at once)"], rows, built, args)
        results[f"local, out of core ({args.chunk_rows:,}/part)"] = run_child(args, folder, "local")
        if not args.no_dask:            # one partition per worker
            results["dask, LocalCluster 2 workers"] = run_child(args, folder, "dask", -(-PROMPTS * args.copies // 2))
        side_by_side(results, rows)
    if args.no_scale:
        return
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        big = Path(tmp) / "synthetic-big"
        t = time.perf_counter()
        big_rows = build_folder(big, args.scale_copies)
        built = time.perf_counter() - t
        print(f"\nscaling folder: {big_rows:,} outcome rows (built in {built:.0f} s)")
        scaled = run_child(args, big, "local")
    small = results[f"local, out of core ({args.chunk_rows:,}/part)"]
    print(f"{'out of core':22s} {'rows':>12s} {'wall s':>8s} {'rows/s':>10s} {'CPU s':>8s} {'peak RSS MB':>12s}")
    for n, r in ((rows, small), (big_rows, scaled)):
        print(f"{'':22s} {n:12,} {r['wall']:8.1f} {n / r['wall']:10,.0f} {r['cpu_s']:8.1f} {r['peak_mb']:12.0f}")
    print(f"20M-row bar: peak RSS <= 2048 MB: {scaled['peak_mb'] <= 2048}; engine == vectorised: {scaled['equal']}")


if __name__ == "__main__":
    main()
