"""``--engine ray``: the partitions as Ray tasks on a local Ray of 2 CPUs give the report of ``--engine
local`` (replay) and its artifact (train); without Ray installed, the error names the extra."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cascade.extras import MissingExtra
from cascade.replay.parts import mapper, partition_rows
from tests.cascade.replay.test_partitions import REPO, without_timings

ENV = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def folder(data_root):
    return data_root / "routerbench_subset"


def test_ray_engine_on_two_local_cpus_prints_the_local_report(folder):
    common = [sys.executable, "-m", "cascade.cli", "replay", "--data", str(folder), "--json", "-q"]
    local = subprocess.run(common + ["--engine", "local"], capture_output=True, text=True, env=ENV, cwd=REPO)
    ray = subprocess.run(common + ["--engine", "ray", "--workers", "2", "--chunk-rows", "100"],
                         capture_output=True, text=True, env=ENV, cwd=REPO)
    assert local.returncode == 0, local.stderr
    assert ray.returncode == 0, ray.stderr[-3000:]
    doc = json.loads(ray.stdout)
    assert doc["data"]["n_requests"] > 3 * 100                     # several partitions, several tasks
    assert without_timings(doc) == without_timings(json.loads(local.stdout))


def test_ray_mapper_keeps_the_order_and_passes_keywords():
    with mapper("ray", workers=2) as run:
        got = run(partition_rows, [5, 2, 7, 3], rows=2)
    assert [[p.tolist() for p in parts] for parts in got] == \
        [[p.tolist() for p in partition_rows(n, 2)] for n in (5, 2, 7, 3)]
    assert [len(parts) for parts in got] == [3, 1, 4, 2]


def test_without_ray_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtra, match=r"--engine ray needs ray.*deepseek-cascade\[ray\]"):
        with mapper("ray"):
            pass
