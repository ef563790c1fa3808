"""The outcome sample shipped in the package: intact, small, licensed, split-faithful, reproducible from the
shared data, and replayed by ``cascade replay`` when no data is given."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from cascade.datasets.build_sample import PLANS, build, choose, sha256_file
from cascade.datasets.manifest import load_manifest
from cascade.datasets.sample import SAMPLE_ROOT, sample_folder, sample_index
from cascade.replay.data import load_outcome_folders
from cascade.replay.run import replay_report
from classifiers.splits import split_of
from policies.loader import load_policy
from tests.cascade.replay.helpers import data_root

commands.register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
MAX_BYTES = 3_000_000
SHARED = data_root()
needs_shared = pytest.mark.skipif(SHARED is None, reason="the shared outcome data (../shared/data or CASCADE_DATA) "
                                  "is not on this machine: the sample cannot be rebuilt or compared with it")


def shipped_files() -> list[Path]:
    return sorted(p for p in SAMPLE_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_every_shipped_file_is_whole_and_the_sample_is_small():
    index = sample_index()
    recorded = {f"{folder}/{name}": f for folder, e in index["folders"].items() for name, f in e["files"].items()}
    data_files = {str(p.relative_to(SAMPLE_ROOT)): p for p in shipped_files()}
    assert set(data_files) == set(recorded) | {"sample.json", "SOURCES.md"}
    for rel, f in recorded.items():
        assert sha256_file(data_files[rel]) == f["sha256"] and data_files[rel].stat().st_size == f["bytes"], rel
    assert sum(p.stat().st_size for p in shipped_files()) <= MAX_BYTES


def test_sources_and_licenses_are_named_next_to_the_data():
    sources = (SAMPLE_ROOT / "SOURCES.md").read_text()
    manifest = load_manifest()
    for plan in PLANS:
        spec = manifest[plan.name]
        assert f"## {plan.name}" in sources and spec.homepage in sources and spec.license in sources
        meta = json.loads((SAMPLE_ROOT / plan.name / "meta.json").read_text())
        assert spec.license in meta["source"] and (meta["cheap"], meta["strong"]) == (spec.cheap, spec.strong)
    for name in ("Apache-2.0.txt", "MIT-RouterBench.txt", "MIT-LLMRouter.txt"):
        text = (SAMPLE_ROOT.parent / "LICENSES" / name).read_text()
        assert ("Apache License" in text) if name.startswith("Apache") else ("Permission is hereby granted" in text)
        assert f"../LICENSES/{name}" in sources


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.name)
def test_each_sample_folder_keeps_its_splits_and_replays(plan):
    entry = sample_index()["folders"][plan.name]
    prompts = pq.read_table(sample_folder(plan.name) / "prompts.parquet")["prompt"].to_pylist()
    counted: dict[str, int] = {}
    for text in prompts:
        counted[split_of(text)] = counted.get(split_of(text), 0) + 1
    assert counted == entry["splits"] and len(prompts) == entry["prompts"] == plan.total
    data = load_outcome_folders([sample_folder(plan.name)], load_policy("default"), {}, "test")
    assert len(data) + data.dropped == entry["splits"]["test"] and len(data) > 0.9 * entry["splits"]["test"]


def test_selection_depends_on_ids_and_texts_not_on_order():
    ids = [f"p{i}" for i in range(400)]
    texts = [f"prompt number {i}" for i in range(400)]
    plan = PLANS[1]
    kept, counts = choose(ids, texts, plan)
    pairs = list(zip(ids, texts))
    random.Random(7).shuffle(pairs)
    assert choose([i for i, _ in pairs], [t for _, t in pairs], plan) == (kept, counts)
    assert sum(counts.values()) == len(kept) == min(plan.total, sum(1 for t in texts if split_of(t) != "train"))


def test_replay_with_no_data_replays_the_bundled_sample_and_says_so_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["replay", "--policy", "default", "--quiet"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("data: bundled sample, 2,000 MMLU-Pro prompts") and "cascade data list" in first
    assert "1,575 requests" in res.stdout and "always strong" in res.stdout
    res = runner.invoke(app, ["replay", "--policy", "default", "--quiet", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)                                        # stdout stays pure JSON
    assert doc["data"]["sources"] == [str(sample_folder())] and "bundled sample" in res.stderr


def test_the_quality_match_policy_replays_on_the_sample_with_its_second_opinion():
    doc = replay_report("quality-match", [])                  # meta.json maps deepseek-coder to Coder-V2
    assert doc["data"]["models"] == [{"deepseek-coder": "DeepSeek-Coder-V2_5shots", "deepseek-v2":
                                      "DeepSeek-V2-Chat(api,2024-05)", "gpt-4o": "gpt-4o-2024-05-13"}]
    rows = doc["rows"]
    assert rows["always_cheap"]["quality"] < rows["policy"]["quality"] <= rows["always_strong"]["quality"]


def test_data_list_names_the_sample_the_sets_and_their_sources():
    res = runner.invoke(app, ["data", "list"])
    assert res.exit_code == 0, res.output
    for spec in load_manifest().values():
        assert spec.name in res.stdout and spec.homepage in res.stdout and spec.license in res.stdout
    assert "Bundled sample" in res.stdout and str(SAMPLE_ROOT / "mmlu_pro") in res.stdout
    doc = json.loads(runner.invoke(app, ["data", "list", "--json"]).stdout)
    assert list(doc["sample"]["folders"])[0] == "mmlu_pro"
    assert all(s["unrecorded_digests"] == [] for s in doc["sets"])


# ---- against the shared data ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    if SHARED is None:
        pytest.skip("the shared outcome data is not on this machine")
    out = tmp_path_factory.mktemp("rebuild") / "sample"
    return out, build(SHARED, out)


@needs_shared
def test_a_rebuild_selects_the_same_rows_from_the_same_sources(rebuilt):
    out, index = rebuilt
    shipped = sample_index()
    for name, entry in index["folders"].items():
        assert entry["source_sha256"] == shipped["folders"][name]["source_sha256"], (
            f"{SHARED / name} differs from the data the shipped sample was built from: rebuild it with "
            f"python -m cascade.datasets.build_sample --from {SHARED}")
        for table in entry["files"]:
            if table.endswith(".parquet"):
                assert pq.read_table(out / name / table).equals(pq.read_table(SAMPLE_ROOT / name / table)), table
        assert json.loads((out / name / "meta.json").read_text()) == \
            json.loads((SAMPLE_ROOT / name / "meta.json").read_text())


@needs_shared
def test_a_rebuild_is_byte_identical(rebuilt):
    import pyarrow
    out, index = rebuilt
    if pyarrow.__version__ != sample_index()["pyarrow"]:
        pytest.skip(f"the shipped sample was written by pyarrow {sample_index()['pyarrow']}, this is "
                    f"{pyarrow.__version__}: parquet bytes may differ (rows are compared by the test above)")
    rebuilt_files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert rebuilt_files == sorted(str(p.relative_to(SAMPLE_ROOT)) for p in shipped_files())
    for rel in rebuilt_files:
        assert (out / rel).read_bytes() == (SAMPLE_ROOT / rel).read_bytes(), rel


@needs_shared
def test_replay_on_the_sample_equals_replay_on_the_full_test_split():
    on_sample = replay_report("default", [])
    on_full = replay_report("default", [SHARED / "mmlu_pro"])
    for doc in (on_sample, on_full):
        doc.pop("timings_s")
        doc["data"].pop("sources")
    assert on_sample == on_full
