"""Responses of models a replay does not read: their row groups are skipped by the model column's
statistics, and what is read equals a read of every group."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from cascade.replay.arrow import read_responses, row_groups_holding


def _write(path, groups):
    writer = None
    for rows in groups:
        table = pa.table({"prompt_id": [p for p, _, _ in rows], "model": [m for _, m, _ in rows],
                          "response": [r for _, _, r in rows]})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def test_groups_without_a_wanted_model_are_skipped_and_the_texts_are_the_same(tmp_path):
    path = tmp_path / "responses.parquet"
    _write(path, [[("p1", "cheap", "a1"), ("p2", "cheap", "a2")],
                  [("p1", "other", "o1"), ("p2", "other", "o2")],
                  [("p1", "strong", "s1"), ("p2", "cheap", "a2'")],
                  [("p2", "zeta", "z2")]])
    pf = pq.ParquetFile(path)
    assert row_groups_holding(pf, "model", ["cheap", "strong"]) == [0, 2]
    assert row_groups_holding(pf, "model", ["other"]) == [1, 2]      # "other" lies between cheap and strong
    assert row_groups_holding(pf, "model", ["aaa"]) == []
    ids = pa.array(["p1", "p2"], type=pa.large_string())
    assert read_responses(path, ids, ["cheap", "strong"]) == [["a1", "a2'"], ["s1", None]]
    assert read_responses(path, ids, ["zeta", "other"]) == [[None, "z2"], ["o1", "o2"]]


def test_groups_without_statistics_are_read(tmp_path):
    path = tmp_path / "responses.parquet"
    table = pa.table({"prompt_id": ["p1"], "model": ["cheap"], "response": ["a1"]})
    pq.write_table(table, path, write_statistics=False)
    pf = pq.ParquetFile(path)
    assert row_groups_holding(pf, "model", ["strong"]) == [0]
    assert read_responses(path, pa.array(["p1"], type=pa.large_string()), ["cheap"]) == [["a1"]]
