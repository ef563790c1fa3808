"""Shadow and feedback lines joined to their requests; replay reads the labels as quality."""
from __future__ import annotations

import json

import pytest

from cascade.learning.labels import merge_labels, read_labelled, write_lines
from cascade.replay.traces import load_traces
from policies.loader import load_policy


def request(rid: str, model: str = "deepseek-v2", status: str = "ok") -> dict:
    return {"v": 1, "request_id": rid, "user": "u", "policy": "p", "score": 0.1, "modality": "text", "model": model,
            "escalated": False, "cost_usd": 0.001, "outcome": "ok", "prompt": f"Calculate {rid}.",
            "attempts": [{"model": model, "status": status, "cost_usd": 0.001, "completion_tokens": 3,
                          "prompt_tokens": 5, "checks": [], "answer": "1"}]}


def shadow(rid: str, adequate, status: str = "ok") -> dict:
    return {"v": 1, "kind": "shadow", "request_id": rid, "model": "gpt-4o", "status": status, "cost_usd": 0.01,
            "prompt_tokens": 5, "completion_tokens": 2, "label": {"adequate": adequate, "source": "agreement"},
            "answer": "2"}


def feedback(rid: str, score: float) -> dict:
    return {"v": 1, "kind": "feedback", "request_id": rid, "user": "u", "score": score}


def test_labels_join_their_requests():
    rows = merge_labels([request("a"), request("b"), request("c"), request("d"),
                         shadow("a", True), shadow("b", False), feedback("b", 0.75), shadow("c", None),
                         shadow("d", True, status="error")])
    by_id = {r["request_id"]: r for r in rows}
    assert [r["request_id"] for r in rows] == ["a", "b", "c", "d"]
    assert by_id["a"]["label"] == {"quality": 1.0, "source": "agreement", "model": "deepseek-v2"}
    assert by_id["b"]["label"] == {"quality": 0.75, "source": "feedback", "model": "deepseek-v2"}  # the user's word wins
    assert by_id["a"]["attempts"][0]["quality"] == 1.0 and by_id["b"]["attempts"][0]["quality"] == 0.75
    added = by_id["a"]["attempts"][1]
    assert (added["model"], added["status"], added["quality"], added["shadow"], added["cost_usd"], added["answer"]) \
        == ("gpt-4o", "ok", 1.0, True, 0.01, "2")
    assert "label" not in by_id["c"] and len(by_id["c"]["attempts"]) == 2         # answered, undecided
    assert "label" not in by_id["d"] and len(by_id["d"]["attempts"]) == 1         # the shadow call failed


def test_replay_reads_labels_as_quality(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [request("a"), request("b"), shadow("a", True), shadow("b", False)]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    data = load_traces(path, load_policy("default"), {}, "all")
    assert data.quality.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    assert data.available.all() and data.cost_usd[:, 1].tolist() == pytest.approx([0.01, 0.01])
    assert [r["request_id"] for r in read_labelled(path, only_labelled=True)] == ["a", "b"]
    again = write_lines(read_labelled(path), tmp_path / "merged.jsonl")
    assert load_traces(again, load_policy("default"), {}, "all").quality.tolist() == [[1.0, 1.0], [0.0, 1.0]]


def exploring(rid: str, adequate, *, reused: bool = False) -> dict:
    return {"v": 1, "kind": "shadow", "request_id": rid, "model": "deepseek-v2", "answered_by": "gpt-4o",
            "explores": True, "status": "ok", "cost_usd": 0.0 if reused else 0.0002, "prompt_tokens": 5,
            "completion_tokens": 2, "label": {"adequate": adequate, "source": "agreement"}, "answer": "1",
            **({"reused": True} if reused else {})}


def test_an_exploring_shadow_labels_the_cheap_rung_not_the_returned_answer(tmp_path):
    routed = request("r", model="gpt-4o", status="check_failed")  # straight to GPT-4o (its answer failed a check:
    #                                                                 still the reference); the cheap rung asked after
    escalated = request("e", model="gpt-4o")
    escalated["attempts"].insert(0, {**request("e")["attempts"][0], "status": "check_failed"})
    undecided = request("u", model="gpt-4o")
    lines = [routed, escalated, undecided, exploring("r", False), exploring("e", True, reused=True),
             exploring("u", None)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows = {r["request_id"]: r for r in read_labelled(path)}
    assert rows["r"]["label"] == {"quality": 0.0, "source": "agreement", "explores": True, "model": "deepseek-v2"}
    assert [(a["model"], a.get("quality")) for a in rows["r"]["attempts"]] == [("gpt-4o", 1.0), ("deepseek-v2", 0.0)]
    assert [(a["model"], a.get("quality")) for a in rows["e"]["attempts"]] == [("deepseek-v2", 1.0), ("gpt-4o", 1.0)]
    assert "label" not in rows["u"] and len(rows["u"]["attempts"]) == 1          # nobody judged the cheap answer
    data = load_traces(path, load_policy("default"), {}, "all")
    assert data.quality.tolist() == [[0.0, 1.0], [1.0, 1.0], [0.0, 1.0]]
    assert data.available.tolist() == [[True, True], [True, True], [False, True]]


def test_parquet_traces_keep_shadow_and_feedback_lines_beside_their_requests(tmp_path):
    import pyarrow.parquet as pq

    from cascade.replay.run import replay_report
    from cascade.replay.traceparquet import traces_to_parquet
    lines = [request("a"), request("b"), request("c", model="gpt-4o"), request("d"), shadow("a", True),
             feedback("b", 0.0), exploring("c", False), shadow("d", False), feedback("gone", 1.0)]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert traces_to_parquet(src, tmp_path / "t.parquet", batch_lines=1) == len(lines)
    table = pq.read_table(tmp_path / "t.parquet")
    assert table.column("kind").to_pylist() == [None, "shadow", None, "feedback", None, "shadow", None, "shadow",
                                                "feedback"]                     # each beside its request
    assert table.num_rows == pq.ParquetFile(tmp_path / "t.parquet").metadata.num_rows
    jsonl = replay_report("default", traces=src, split="all")
    parquet = replay_report("default", traces=tmp_path / "t.parquet", split="all")
    parts = replay_report("default", traces=tmp_path / "t.parquet", split="all", chunk_rows=1)
    for doc in (parquet, parts):
        assert doc["rows"]["always_cheap"] == jsonl["rows"]["always_cheap"]
        assert doc["rows"]["policy"]["quality"] == jsonl["rows"]["policy"]["quality"]
    assert jsonl["rows"]["always_cheap"]["quality"] == pytest.approx(1 / 3)    # both rungs known: a 1, c 0, d 0
    assert not any("no prompt text" in n for n in parquet["notes"])            # labels' lines hold no prompt
