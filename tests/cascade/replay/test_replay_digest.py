"""benchmarks/replay_digest.py: the digest names the data by content, not by where it lies — the same
folder in two places gives the same digest, one changed score another."""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.harness.benchmarks import load_benchmark

FOLDER = "routerbench_subset"


replay_digest = load_benchmark("replay_digest")


def digest_of(folder: Path, capsys) -> str:
    replay_digest.main([str(folder)])
    out = capsys.readouterr().out
    assert out.startswith("digest "), out
    return out.split()[1]


def test_same_data_in_two_places_same_digest_and_a_changed_score_another(data_root, tmp_path, capsys):
    here, there = tmp_path / "checkout-a" / FOLDER, tmp_path / "elsewhere" / "b" / FOLDER
    for copy in (here, there):
        shutil.copytree(data_root / FOLDER, copy)
    assert replay_digest.content_identity(here) == replay_digest.content_identity(there)
    digest = digest_of(here, capsys)
    assert digest_of(there, capsys) == digest

    outcomes = pq.read_table(there / "outcomes.parquet")
    cheap = pc.equal(outcomes["model"], outcomes["model"][0]).to_numpy(zero_copy_only=False)
    scores = outcomes["score"].to_numpy(zero_copy_only=False).copy()
    first = int(cheap.nonzero()[0][0])
    scores[first] = 1.0 - scores[first]                     # one answer's score flipped
    changed = outcomes.set_column(outcomes.schema.get_field_index("score"), outcomes.schema.field("score"),
                                  pa.array(scores, type=outcomes.schema.field("score").type))
    pq.write_table(changed, there / "outcomes.parquet")
    assert replay_digest.content_identity(here) != replay_digest.content_identity(there)
    assert digest_of(there, capsys) != digest


def test_the_identity_replaces_the_path_wherever_the_report_mentions_it(tmp_path):
    folder = tmp_path / "data" / FOLDER
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    identity = replay_digest.content_identity(folder)
    doc = {"data": {"sources": [str(folder)]}, "by_source": {str(folder): {"n": 1}},
           "notes": [f"{folder}: 3 prompts dropped"], "timings_s": {"load": 1.0}}
    assert replay_digest.without_paths(doc, folder) == {
        "data": {"sources": [identity]}, "by_source": {identity: {"n": 1}},
        "notes": [f"{identity}: 3 prompts dropped"], "timings_s": {"load": 1.0}}
    assert str(tmp_path) not in repr(replay_digest.without_paths(doc, folder))
