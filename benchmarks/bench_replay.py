"""Replay throughput: >= 1M outcome rows replayed with a 101-point threshold sweep, wall time and peak RSS.

    python benchmarks/bench_replay.py [--copies 4] [--policy default] [--classifier NAME] [--keep DIR]

Builds a synthetic outcome folder in a temp dir from the real MMLU-Pro tables: the 10,683 prompts repeated
``--copies`` times with new ids, each copy's scores and completion tokens shuffled per model (31 models:
4 copies = 1.32M outcome rows), the DeepSeek-V2 / GPT-4o responses repeated beside them. Then, in a fresh
process, ``replay_report(policy, [folder], split="all", full_sweep=FULL)`` (``--full``: 101 x 101 points): streaming the Parquet tables,
the policy classifier's batch scoring (once per distinct prompt text: the copies repeat the texts), the
answer checks on the recorded responses, the per-request engine replay, the vectorised 101-point sweep
and the report. Wall time (process start to report) and peak RSS (``resource.getrusage``) are printed
with the stage timings, beside two peers measured in the same child process on the same arrays:
the per-request ``decide()`` replay repeated at each of the 101 thresholds (extrapolated from one pass),
and ``classifiers.metrics.cascade_sweep`` (a numpy loop over the 101 thresholds, no engine rules).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import data_dir

ROW_GROUP = 131_072

CHILD = r"""
import json, math, resource, sys, time
t0 = time.perf_counter()
from cascade.replay.run import run_replay
from cascade.replay.report import build_report
policy, folder, classifier, full = sys.argv[1], sys.argv[2], sys.argv[3] or None, sys.argv[4] == "1"
scorer = None
if classifier:
    from classifiers import load_classifier
    scorer = load_classifier(classifier)
run = run_replay(policy, [folder], split="all", full_sweep=full, classifier=scorer)
doc = build_report(run)
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import numpy as np
from classifiers import metrics
from cascade.replay.sweep import GRID
d = run.data
t = time.perf_counter()
metrics.cascade_sweep(run.scores, np.zeros(len(d)), d.quality[:, 0], d.quality[:, -1], d.cost_usd[:, 0],
                      d.cost_usd[:, -1], t1_grid=GRID, t2_grid=[math.inf])
peer_numpy = time.perf_counter() - t
print(json.dumps({"wall_in_process_s": wall, "rss_kb": rss, "timings": run.timings, "n": len(d),
                  "distinct_texts": len(set(d.prompts)), "score_source": run.score_source,
                  "points": len(doc["sweep"]["points"]["t1"]), "equal": doc["engine_equals_vectorised"],
                  "peer_numpy_sweep_s": peer_numpy, "quality": doc["rows"]["policy"]["quality"]}))
"""


def build_folder(out: Path, copies: int, seed: int = 0) -> int:
    """Write the synthetic folder; return its number of outcome rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = data_dir("mmlu_pro")
    rng = np.random.default_rng(seed)
    prompts = pq.read_table(src / "prompts.parquet")
    outcomes = pq.read_table(src / "outcomes.parquet")
    responses = pq.read_table(src / "responses.parquet")
    p_parts, o_parts, r_parts = [], [], []
    models = outcomes.column("model").to_numpy(zero_copy_only=False)
    for k in range(copies):
        new_id = lambda col: pa.array([f"c{k}-{x}" for x in col.to_pylist()], pa.large_string())  # noqa: E731
        p_parts.append(prompts.set_column(0, "prompt_id", new_id(prompts.column("prompt_id"))))
        score = outcomes.column("score").to_numpy().copy()
        tokens = outcomes.column("completion_tokens").to_numpy().copy()
        if k:
            for m in np.unique(models):
                idx = np.flatnonzero(models == m)
                perm = rng.permutation(idx)
                score[idx], tokens[idx] = score[perm], tokens[perm]
        o_parts.append(pa.table({"prompt_id": new_id(outcomes.column("prompt_id")), "model": outcomes.column("model"),
                                 "score": score, "completion_tokens": tokens, "cost_usd": outcomes.column("cost_usd")}))
        r_parts.append(responses.set_column(0, "prompt_id", new_id(responses.column("prompt_id"))))
    out.mkdir(parents=True, exist_ok=True)
    table = pa.concat_tables(o_parts)
    order = rng.permutation(table.num_rows)                      # interleave copies and models
    pq.write_table(pa.concat_tables(p_parts), out / "prompts.parquet", row_group_size=ROW_GROUP)
    pq.write_table(table.take(order), out / "outcomes.parquet", row_group_size=ROW_GROUP)
    pq.write_table(pa.concat_tables(r_parts), out / "responses.parquet", row_group_size=ROW_GROUP // 4)
    (out / "meta.json").write_text((src / "meta.json").read_text())
    return table.num_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=4, help="copies of MMLU-Pro (4 = 42,732 prompts, 1.32M rows)")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--classifier", default="", help="score with this classifier instead of the policy's")
    ap.add_argument("--keep", type=Path, help="build the folder here and keep it")
    ap.add_argument("--full", action="store_true",
                    help="also sweep the answer-checker threshold (101 x 101 points; the bar is for 101 points)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "synthetic"
        t = time.perf_counter()
        rows = build_folder(folder, args.copies)
        built = time.perf_counter() - t
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        root = Path(__file__).resolve().parents[1]
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, args.policy, str(folder), args.classifier,
                               "1" if args.full else "0"],
                              capture_output=True, text=True, env=env, cwd=root)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(proc.stderr)
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    timings = child["timings"]
    per_threshold = timings["engine_replay"]
    print(f"synthetic folder: {rows:,} outcome rows, {child['n']:,} prompts ({child['distinct_texts']:,} distinct "
          f"texts) x 31 models, built in {built:.1f} s")
    print(f"policy {args.policy!r}, scores: {child['score_source']}, sweep: {child['points']} points, "
          f"engine == vectorised: {child['equal']}\n")
    print(f"{'replay, process start to report (wall)':48s} {wall:8.2f} s   (bar: <= 10 s)")
    print(f"{'peak RSS of the replay process':48s} {peak_mb:8.0f} MB  (bar: <= 2048 MB)")
    for name, secs in timings.items():
        print(f"  {name:46s} {secs:8.2f} s")
    print(f"  {'imports + report (rest)':46s} {child['wall_in_process_s'] - sum(timings.values()):8.2f} s")
    print(f"{'replay without the classifier scoring':48s} {wall - timings['classifier']:8.2f} s")
    print(f"\n{'101-point sweep, ours (vectorised engine rule)':48s} {timings['sweep']:8.3f} s")
    print(f"{'101-point sweep, decide() replay x 101 (est.)':48s} {per_threshold * 101:8.3f} s")
    print(f"{'101-point sweep, classifiers.metrics.cascade_sweep':48s} {child['peer_numpy_sweep_s']:8.3f} s"
          "   (no budget/ladder rules)")


if __name__ == "__main__":
    main()
