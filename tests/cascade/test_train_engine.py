"""``cascade train --engine dask | ray``: the features extracted on a 2-worker LocalCluster (or a local Ray of
2 CPUs), the fit here; the artifacts equal ``--engine local``'s bit for bit (every array, and the metadata but
the training time)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from classifiers.features import sparse_matrix, struct_matrix
from classifiers.signals import signal_matrix
from classifiers.training.rowmap import LOCAL, RowMap

REPO = Path(__file__).resolve().parents[2]
PROMPTS = 1500


@pytest.fixture(scope="module")
def mmlu_slice(data_root, tmp_path_factory):
    """The first 1,500 MMLU-Pro prompts with their outcomes and recorded answers."""
    src, out = data_root / "mmlu_pro", tmp_path_factory.mktemp("slice")
    prompts = pq.read_table(src / "prompts.parquet").slice(0, PROMPTS)
    keep = prompts.column("prompt_id")
    pq.write_table(prompts, out / "prompts.parquet")
    for name in ("outcomes.parquet", "responses.parquet"):
        table = pq.read_table(src / name)
        pq.write_table(table.filter(pc.is_in(table.column("prompt_id"), value_set=keep)), out / name)
    (out / "meta.json").write_text((src / "meta.json").read_text())
    return out


def train(folder: Path, out: Path, *args: str) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "cascade.cli", "train", "--data", str(folder), "--out", str(out),
                           *args], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_same_artifact(a: Path, b: Path) -> None:
    left, right = np.load(a.with_suffix(".npz")), np.load(b.with_suffix(".npz"))
    assert sorted(left.files) == sorted(right.files)
    for key in left.files:
        assert left[key].dtype == right[key].dtype and np.array_equal(left[key], right[key]), key
    metas = [json.loads(p.with_suffix(".json").read_text()) for p in (a, b)]
    for meta in metas:
        assert meta["report"].pop("train_seconds") >= 0
    assert metas[0] == metas[1]


@pytest.mark.parametrize("kind, engine", [([], "dask"), (["--checker"], "dask"), ([], "ray")],
                         ids=["classifier-dask", "checker-dask", "classifier-ray"])
def test_cluster_engine_trains_the_local_artifact(mmlu_slice, tmp_path, kind, engine):
    train(mmlu_slice, tmp_path / "local", *kind, "--engine", "local")
    train(mmlu_slice, tmp_path / engine, *kind, "--engine", engine, "--workers", "2")
    assert_same_artifact(tmp_path / "local", tmp_path / engine)


def test_partitioned_features_stack_to_the_whole(data_root):
    """Each feature function over partitions (a plain in-process mapper), stacked, is the function over all
    rows: sparse, dense and signal matrices alike, partitions of two rows (the fewest a RowMap makes) included."""
    from classifiers.checker import extra_columns
    from classifiers.training.train import CHECKER_SPEC
    table = pq.read_table(data_root / "mmlu_pro" / "responses.parquet").slice(0, 301)
    answers = [t or "" for t in table.column("response").to_pylist()]
    prompts = [f"Q{i % 7}\nA. {i}\nB. {i + 1}" for i in range(len(answers))]
    serial = RowMap(lambda fn, items, **kw: [fn(item, **kw) for item in items], parts=1000)
    for rowmap in (serial, RowMap(serial.mapper, parts=4)):
        whole = sparse_matrix(answers, CHECKER_SPEC)
        parts = rowmap(sparse_matrix, answers, spec=CHECKER_SPEC)
        assert (whole != parts).nnz == 0 and np.array_equal(whole.indptr, parts.indptr)
        assert np.array_equal(rowmap(struct_matrix, answers, spec=CHECKER_SPEC), struct_matrix(answers, CHECKER_SPEC))
        assert np.array_equal(rowmap(extra_columns, prompts, answers), extra_columns(prompts, answers))
        assert np.array_equal(rowmap(signal_matrix, prompts, answers), signal_matrix(prompts, answers))
    assert LOCAL(len, answers) == len(answers)              # no mapper: the function on every row at once


def test_engine_is_refused_with_traces(tmp_path):
    from typer.testing import CliRunner

    from cascade.cli import app
    from cascade.commands import register
    register(app)
    res = CliRunner().invoke(app, ["train", "--traces", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "o"),
                                   "--engine", "dask"])
    assert res.exit_code == 2 and "--engine applies to training on outcome folders" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--engine", "spark"])
    assert res.exit_code == 2
