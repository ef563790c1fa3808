"""Replay by partitions (out of core, and on a 2-worker Dask cluster) gives the in-memory report exactly;
JSONL traces converted to Parquet replay as the JSONL file does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cascade.replay.run import load_data, replay_report, run_replay
from cascade.replay.spill import spill_folder
from cascade.replay.traceparquet import traces_to_parquet
from policies.errors import ConfigError
from policies.loader import load_policy
from tests.cascade.replay.helpers import write_policy
from tests.cascade.replay.test_replay_traces import MAPS, write_traces

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def real(data_root):
    return [data_root / "mmlu_pro", data_root / "routerbench_subset"]


def without_timings(doc):
    return json.dumps({k: v for k, v in doc.items() if k != "timings_s"}, sort_keys=True)


def test_out_of_core_replay_equals_the_in_memory_one_on_real_folders(real):
    whole = replay_report("default", real, full_sweep=True)
    parts = replay_report("default", real, full_sweep=True, engine="local", chunk_rows=300)
    assert whole["data"]["n_requests"] > 6 * 300          # several partitions per folder
    assert whole["engine_equals_vectorised"] is True
    assert without_timings(parts) == without_timings(whole)
    assert parts["timings_s"]["partition"] > 0


def test_partitions_of_data_already_read_equal_the_whole(real):
    policy = load_policy("default")
    data = load_data(policy, real[:1], split="calibration")
    from cascade.replay.report import build_report
    whole, parts = run_replay(policy, data=data), run_replay(policy, data=data, chunk_rows=500)
    assert parts.checks is None and whole.checks is not None and data.dropped > 0
    assert len(data) > 2 * 500
    assert without_timings(build_report(parts)) == without_timings(build_report(whole))


def test_spill_cuts_a_folder_in_prompt_order(real, tmp_path):
    policy = load_policy("default")
    dirs = spill_folder(real[0], 0, policy, {}, "test", tmp_path, part_rows=400)
    ids = [i for d in dirs for i in pq.read_table(d / "prompts.parquet").column("prompt_id").to_pylist()]
    data = load_data(policy, real[:1])                       # drops the prompts lacking a rung's outcome
    kept = set(data.ids)
    assert [i for i in ids if i in kept] == data.ids and len(ids) == len(data) + data.dropped > len(data)
    assert len(dirs) == -(-len(ids) // 400)
    for d in dirs:
        mine = set(pq.read_table(d / "prompts.parquet").column("prompt_id").to_pylist())
        assert set(pq.read_table(d / "outcomes.parquet").column("prompt_id").to_pylist()) <= mine
        assert set(pq.read_table(d / "outcomes.parquet").column("model").to_pylist()) == \
            {"DeepSeek-V2-Chat(api,2024-05)", "gpt-4o-2024-05-13"}
        assert (d / "meta.json").is_file() and (d / "responses.parquet").is_file()


def test_bad_engine_and_chunk_size_are_config_errors(real, tmp_path):
    with pytest.raises(ConfigError, match="--engine"):
        run_replay("default", real[:1], engine="spark", chunk_rows=10)
    with pytest.raises(ConfigError, match="--chunk-rows"):
        spill_folder(real[0], 0, load_policy("default"), {}, "test", tmp_path, part_rows=0)


def test_dask_engine_on_two_local_workers_prints_the_local_report(real):
    """``cascade replay --engine dask`` (a LocalCluster of 2 worker processes) == ``--engine local``."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    common = [sys.executable, "-m", "cascade.cli", "replay", "--data", str(real[1]), "--json", "-q"]
    local = subprocess.run(common + ["--engine", "local"], capture_output=True, text=True, env=env, cwd=REPO)
    dask = subprocess.run(common + ["--engine", "dask", "--workers", "2", "--chunk-rows", "300"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert local.returncode == 0, local.stderr
    assert dask.returncode == 0, dask.stderr
    assert without_timings(json.loads(dask.stdout)) == without_timings(json.loads(local.stdout))


def test_traces_converted_to_parquet_replay_as_the_jsonl(tmp_path):
    policy = write_policy(tmp_path)
    src = write_traces(tmp_path / "t.jsonl", keep_text=True)
    assert traces_to_parquet(src, tmp_path / "t.parquet", batch_lines=2) == 3
    assert pq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 2
    jsonl = replay_report(str(policy), traces=src, maps=MAPS)
    parquet = replay_report(str(policy), traces=tmp_path / "t.parquet", maps=MAPS)
    assert without_timings(parquet).replace("t.parquet", "t.jsonl") == without_timings(jsonl)
    chunked = replay_report(str(policy), traces=tmp_path / "t.parquet", maps=MAPS, chunk_rows=2)
    assert without_timings(chunked) == without_timings(parquet)


def test_traces_cli_and_errors(tmp_path):
    from typer.testing import CliRunner

    from cascade.cli import app
    from cascade.commands import register
    register(app)
    src = write_traces(tmp_path / "t.jsonl")
    res = CliRunner().invoke(app, ["traces", "to-parquet", str(src), str(tmp_path / "out.parquet")])
    assert res.exit_code == 0, res.output
    assert "wrote 3 trace line(s)" in res.output
    (tmp_path / "bad.jsonl").write_text('{"no": "trace"}\n')
    res = CliRunner().invoke(app, ["traces", "to-parquet", str(tmp_path / "bad.jsonl"), str(tmp_path / "b.parquet")])
    assert res.exit_code == 2 and "not a cascade trace record" in res.output
    assert not (tmp_path / "b.parquet").exists()
    with pytest.raises(ConfigError, match="not a converted trace file"):
        run_replay(str(write_policy(tmp_path)), traces=_plain_parquet(tmp_path), maps=MAPS)


def _plain_parquet(tmp_path):
    import pyarrow as pa
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    return path


def test_calibrate_by_partitions_chooses_what_the_in_memory_calibration_chooses(tmp_path):
    from typer.testing import CliRunner

    from cascade.cli import app
    from cascade.commands import register
    from tests.cascade.replay.helpers import write_folder
    register(app)
    texts = [(f"p{i}", f"calibration prompt {i}", 100) for i in range(300)]
    rows = [(f"p{i}", m, float((i * (3 if m == "S" else 1)) % 2), 20, None) for i in range(300) for m in ("C", "S")]
    data = write_folder(tmp_path / "cal", texts, rows, [(f"p{i}", m, "answer") for i in range(300) for m in ("C", "S")])
    docs = []
    for extra in ([], ["--chunk-rows", "40"]):
        policy = write_policy(tmp_path, name=f"p{len(extra)}.yaml")
        res = CliRunner().invoke(app, ["calibrate", "--policy", str(policy), "--data", str(data), "--target",
                                       "strong-share=0.5", "--json", *extra])
        assert res.exit_code == 0, res.output
        doc = json.loads(res.stdout)
        docs.append({k: v for k, v in doc.items() if k != "policy_file"})
    assert docs[0] == docs[1] and docs[0]["n"]["calibration"] > 40


def test_a_partition_left_empty_and_a_model_absent_from_one_still_merge_exactly(tmp_path):
    from tests.cascade.replay.helpers import write_folder
    texts = [(f"p{i}", f"prompt number {i}", 100) for i in range(9)]
    # p3..p5 have no strong outcome (dropped: their partition is empty); p6..p8 lack responses
    rows = [(f"p{i}", m, float(i % 2), 20, None) for i in range(9) for m in ("C", "S") if not (m == "S" and 3 <= i < 6)]
    answers = [(f"p{i}", m, "an answer" if i % 3 else "") for i in range(6) for m in ("C", "S")]
    folder = write_folder(tmp_path / "d", texts, rows, answers)
    policy = str(write_policy(tmp_path))
    whole = replay_report(policy, [folder], split="all", full_sweep=True)
    parts = replay_report(policy, [folder], split="all", full_sweep=True, chunk_rows=3)
    assert whole["data"]["n_dropped"] == 3 and whole["notes"]
    assert without_timings(parts) == without_timings(whole)


def test_parquet_traces_without_text_by_row_groups_keep_the_notes_of_the_whole(tmp_path):
    low = write_policy(tmp_path, **{"thresholds: [0.5]": "thresholds: [0.1]"})
    src = write_traces(tmp_path / "t.jsonl")
    traces_to_parquet(src, tmp_path / "t.parquet", batch_lines=1)
    maps = [MAPS[0], "strong=gpt-4o-mini"]                 # a rung the trace never calls
    whole = replay_report(str(low), traces=tmp_path / "t.parquet", maps=maps)
    parts = replay_report(str(low), traces=tmp_path / "t.parquet", maps=maps, chunk_rows=1)
    assert any("never calls 'gpt-4o-mini'" in n for n in whole["notes"])
    assert any("no prompt text" in n for n in whole["notes"])
    assert without_timings(parts) == without_timings(whole)
