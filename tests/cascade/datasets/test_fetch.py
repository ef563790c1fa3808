"""``cascade data download`` against a local HTTP server: success, resume after a cut, corrupted download,
offline, digests that are not recorded (--sha256, --trust-first-download and the lock file)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from cascade.datasets import fetch
from cascade.datasets.errors import DigestMismatch, DigestUnknown, DownloadFailed, SourceUnreachable
from cascade.datasets.fetch import download_set
from cascade.datasets.manifest import LOCK_NAME, load_manifest
from cascade.replay.data import load_outcome_folders
from policies.loader import load_policy
from cascade.datasets.convert import convert
from tests.cascade.datasets.helpers import (SETS, Served, closed_port_url, http_server, mt_bench_files, sha256,
                                            write_manifest)

commands.register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def server():
    served = Served()
    with http_server(served) as base:
        yield served, base


def sets_of(tmp_path: Path, served: Served, base: str, **kw) -> dict:
    return load_manifest(write_manifest(tmp_path / "manifest.json", base, served, **kw))


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith((".part", ".tmp", ".old")) or ".tmp" in p.name)


def table(folder: Path, name: str) -> list[dict]:
    return pq.read_table(folder / f"{name}.parquet").to_pylist()


# ---- success: every converter, read back by the replay loader ---------------------------------------------

@pytest.mark.parametrize("name, prompts, outcome_rows", [
    ("tiny_mmlu_pro", 3, 5), ("tiny_routellm", 2, 6), ("tiny_routerbench", 2, 4), ("tiny_llmrouter", 3, 6),
    ("tiny_gsm8k", 2, 4), ("tiny_mt_bench", 2, 3)])
def test_download_converts_into_an_outcome_folder_replay_reads(server, tmp_path, name, prompts, outcome_rows):
    served, base = server
    spec = sets_of(tmp_path, served, base)[name]
    folder = download_set(spec, tmp_path / "data")
    assert folder == tmp_path / "data" / name
    assert len(table(folder, "prompts")) == prompts and len(table(folder, "outcomes")) == outcome_rows
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["cheap"], meta["strong"]) == SETS[name][2] and meta["prompts"] == prompts
    assert all(meta["files"][f.name]["sha256"] == f.sha256 for f in spec.files)
    data = load_outcome_folders([folder], load_policy("default"), {}, "all")
    assert 0 < len(data) <= prompts
    assert leftovers(tmp_path / "data") == []


def test_mmlu_pro_conversion_values(server, tmp_path):
    served, base = server
    folder = download_set(sets_of(tmp_path, served, base)["tiny_mmlu_pro"], tmp_path / "data")
    prompts = table(folder, "prompts")
    assert [p["prompt_id"] for p in prompts] == ["mmlu-pro-70", "mmlu-pro-71", "mmlu-pro-72"]
    assert prompts[0]["task"] == "mmlu-pro/computer_science"
    assert prompts[0]["prompt"].endswith("\nOptions:\nA. alpha\nB. beta\nC. gamma\nD. delta")
    assert prompts[0]["prompt_tokens"] > 5
    scores = {(o["prompt_id"], o["model"]): (o["score"], o["completion_tokens"]) for o in table(folder, "outcomes")}
    assert scores[("mmlu-pro-70", "A")] == (0.0, 5) and scores[("mmlu-pro-71", "A")] == (1.0, 7)
    assert scores[("mmlu-pro-72", "A")] == (0.0, 4) and scores[("mmlu-pro-70", "B_5shots")] == (1.0, 5)
    answers = {(a["prompt_id"], a["model"]): a["answer"] for a in table(folder, "answers")}
    assert answers[("mmlu-pro-72", "A")] is None and answers[("mmlu-pro-71", "B_5shots")] == "B"
    assert {r["model"] for r in table(folder, "responses")} == {"A"}       # texts kept for responses_for only


def test_routerbench_and_routellm_conversion_values(server, tmp_path):
    served, base = server
    sets = sets_of(tmp_path, served, base)
    rb = download_set(sets["tiny_routerbench"], tmp_path / "data")
    assert [p["prompt"] for p in table(rb, "prompts")] == ["Pick A or B.\nA) x\nB) y", "Second?"]
    rows = {(o["prompt_id"], o["model"]): o for o in table(rb, "outcomes")}
    assert rows[("routerbench-arc.test.2", "cheap/m")]["score"] is None
    assert rows[("routerbench-arc.test.1", "strong-m")]["cost_usd"] == 0.002
    rl = download_set(sets["tiny_routellm"], tmp_path / "data")
    assert {p["task"] for p in table(rl, "prompts")} == {"mmlu/anatomy"}
    assert all(p["prompt_id"].startswith("routellm-") for p in table(rl, "prompts"))


def test_gsm8k_and_mt_bench_conversion_values(server, tmp_path):
    served, base = server
    sets = sets_of(tmp_path, served, base)
    gsm = download_set(sets["tiny_gsm8k"], tmp_path / "data")
    ids = [p["prompt_id"] for p in table(gsm, "prompts")]
    assert len(ids) == 2 and all(i.startswith("gsm8k-") for i in ids)
    assert {r["prompt_id"]: r["reference"] for r in table(gsm, "references")} == dict(zip(ids, ["7", "1400"]))
    answers = {(a["prompt_id"], a["model"]): a["answer"] for a in table(gsm, "answers")}
    assert answers[(ids[1], "weak/model")] == "1300" and answers[(ids[1], "strong-model")] == "1400"
    scores = {(o["prompt_id"], o["model"]): o["score"] for o in table(gsm, "outcomes")}
    assert scores == {(ids[0], "weak/model"): 1.0, (ids[0], "strong-model"): 1.0,
                      (ids[1], "weak/model"): 0.0, (ids[1], "strong-model"): 1.0}     # the repeated row: first kept
    mt = download_set(sets["tiny_mt_bench"], tmp_path / "data")
    assert [(p["prompt_id"], p["task"], p["prompt"]) for p in table(mt, "prompts")] == [
        ("mt-bench-81", "mt-bench/coding", "Reverse a list in Python."), ("mt-bench-82", "mt-bench/writing",
                                                                           "Write a haiku.")]
    rows = {(o["prompt_id"], o["model"]): o["score"] for o in table(mt, "outcomes")}
    assert rows == {("mt-bench-81", "weak/model"): 0.7, ("mt-bench-82", "weak/model"): 0.6,
                    ("mt-bench-82", "strong-model"): 0.9}
    texts = {(r["prompt_id"], r["model"]): r["response"] for r in table(mt, "responses")}
    assert texts[("mt-bench-82", "strong-model")] == "Quiet light"


def test_a_judgement_without_the_answer_it_judged_is_a_conversion_error(server, tmp_path):
    from cascade.datasets.errors import ConversionError
    served, base = server
    spec = sets_of(tmp_path, served, base)["tiny_mt_bench"]
    raw = tmp_path / "raw"
    raw.mkdir()
    files = mt_bench_files()
    files["judgements.jsonl"] = json.dumps({"question_id": 82, "model": "m", "turn": 1, "score": 5,
                                            "user_prompt": "no quoted answer"}).encode()
    for name, data in files.items():
        (raw / name).write_bytes(data)
    with pytest.raises(ConversionError, match=r"judgements.jsonl: line 1: .*quoting the answer judged"):
        convert(raw, spec)


# ---- resume -----------------------------------------------------------------------------------------------

def test_a_cut_transfer_resumes_with_a_range_request(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base)["tiny_llmrouter"]
    path = "/tiny_llmrouter/train.json"
    served.cut[path] = 1
    download_set(spec, tmp_path / "data")
    ranges = [r for p, r in served.requests if p == path]
    size = len(served.files[path])
    assert ranges == [None, f"bytes={size // 2}-"]
    assert (tmp_path / "data" / ".raw" / "tiny_llmrouter" / "train.json").read_bytes() == served.files[path]


def test_a_partial_download_left_by_one_run_is_resumed_by_the_next(server, tmp_path, monkeypatch):
    served, base = server
    spec = sets_of(tmp_path, served, base)["tiny_llmrouter"]
    path = "/tiny_llmrouter/train.json"
    served.cut[path] = 1
    monkeypatch.setattr(fetch, "ATTEMPTS", 1)
    with pytest.raises(DownloadFailed, match="run the command again to resume"):
        download_set(spec, tmp_path / "data")
    part = tmp_path / "data" / ".raw" / "tiny_llmrouter" / "train.json.part"
    offset = part.stat().st_size
    assert 0 < offset < len(served.files[path])
    assert not (tmp_path / "data" / "tiny_llmrouter").exists()
    download_set(spec, tmp_path / "data")
    assert [r for p, r in served.requests if p == path] == [None, f"bytes={offset}-"]
    assert not part.exists() and (tmp_path / "data" / "tiny_llmrouter" / "prompts.parquet").is_file()


def test_a_server_that_ignores_range_gets_a_fresh_start(server, tmp_path):
    served, base = server
    served.ranges = False
    spec = sets_of(tmp_path, served, base)["tiny_llmrouter"]
    served.cut["/tiny_llmrouter/test.json"] = 1
    download_set(spec, tmp_path / "data")
    assert (tmp_path / "data" / ".raw" / "tiny_llmrouter" / "test.json").read_bytes() == \
        served.files["/tiny_llmrouter/test.json"]


# ---- corrupted, missing, offline --------------------------------------------------------------------------

def test_a_corrupted_download_is_refused_and_leaves_nothing_behind(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base, corrupt="test.json")["tiny_llmrouter"]
    with pytest.raises(DigestMismatch) as info:
        download_set(spec, tmp_path / "data")
    err = info.value
    assert err.url.endswith("/tiny_llmrouter/test.json") and err.expected != err.actual
    assert err.actual == sha256(served.files["/tiny_llmrouter/test.json"])
    assert "discarded" in str(err) and err.url in str(err)
    raw = tmp_path / "data" / ".raw" / "tiny_llmrouter"
    assert sorted(p.name for p in raw.iterdir()) == ["train.json"]      # the verified file only
    assert not (tmp_path / "data" / "tiny_llmrouter").exists() and leftovers(tmp_path / "data") == []


def test_a_file_placed_by_hand_is_verified_and_used_without_network(tmp_path):
    good = Served()
    manifest = write_manifest(tmp_path / "manifest.json", closed_port_url(), good)
    spec = load_manifest(manifest)["tiny_llmrouter"]
    raw = tmp_path / "data" / ".raw" / "tiny_llmrouter"
    raw.mkdir(parents=True)
    for f in spec.files:
        (raw / f.name).write_bytes(good.files[f"/tiny_llmrouter/{f.name}"])
    assert (download_set(spec, tmp_path / "data") / "outcomes.parquet").is_file()
    (raw / "test.json").write_bytes(b"[]")
    with pytest.raises(DigestMismatch, match="Remove the file"):
        download_set(spec, tmp_path / "data")
    assert (raw / "test.json").read_bytes() == b"[]"                  # a file given by hand is never deleted


def test_offline_is_a_typed_error_naming_the_url(tmp_path):
    spec = load_manifest(write_manifest(tmp_path / "m.json", closed_port_url(), Served()))["tiny_routellm"]
    with pytest.raises(SourceUnreachable) as info:
        download_set(spec, tmp_path / "data")
    message = str(info.value)
    assert info.value.url == spec.files[0].url and spec.files[0].url in message
    assert "offline" in message and "mmlu_anatomy.csv" in message and "cascade replay" in message
    assert leftovers(tmp_path / "data") == [] and not (tmp_path / "data" / "tiny_routellm").exists()


def test_an_http_error_is_a_typed_error(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base)["tiny_llmrouter"]
    del served.files["/tiny_llmrouter/train.json"]
    with pytest.raises(DownloadFailed) as info:
        download_set(spec, tmp_path / "data")
    assert info.value.status_code == 404 and "HTTP 404" in str(info.value)


# ---- digests not recorded in the manifest -----------------------------------------------------------------

def test_no_recorded_digest_is_refused_before_any_request(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base, record=False)["tiny_llmrouter"]
    with pytest.raises(DigestUnknown, match="--sha256 NAME=HEX .* --trust-first-download"):
        download_set(spec, tmp_path / "data")
    assert served.requests == []


def test_trust_first_download_records_digests_that_later_downloads_must_match(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base, record=False)["tiny_llmrouter"]
    download_set(spec, tmp_path / "data", trust_first=True)
    lock = json.loads((tmp_path / "data" / LOCK_NAME).read_text())
    assert lock == {"tiny_llmrouter": {n: sha256(served.files[f"/tiny_llmrouter/{n}"])
                                       for n in ("train.json", "test.json")}}
    for f in (tmp_path / "data" / ".raw" / "tiny_llmrouter").iterdir():
        f.unlink()
    served.files["/tiny_llmrouter/test.json"] += b"\n"                 # upstream changed since
    with pytest.raises(DigestMismatch, match="the lock file says"):
        download_set(spec, tmp_path / "data")


def test_sha256_given_on_the_command_line(server, tmp_path):
    served, base = server
    spec = sets_of(tmp_path, served, base, record=False)["tiny_llmrouter"]
    given = {n: sha256(served.files[f"/tiny_llmrouter/{n}"]) for n in ("train.json", "test.json")}
    download_set(spec, tmp_path / "ok", given=given)
    with pytest.raises(DigestMismatch, match="the --sha256 says"):
        download_set(spec, tmp_path / "bad", given={**given, "test.json": "0" * 64})
    with pytest.raises(DigestUnknown, match="does not have"):
        download_set(spec, tmp_path / "bad", given={"nope.json": "0" * 64})


# ---- the command ------------------------------------------------------------------------------------------

def test_cli_download_and_errors(server, tmp_path):
    served, base = server
    manifest = write_manifest(tmp_path / "m.json", base, served)
    res = runner.invoke(app, ["data", "download", "tiny_llmrouter", "--manifest", str(manifest),
                              "--to", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.stdout and "3 prompts x 2 models" in res.stdout and "[1/2] train.json" in res.output
    res = runner.invoke(app, ["data", "download", "nope", "--manifest", str(manifest)])
    assert res.exit_code == 2 and "unknown data set 'nope'" in res.output and "Traceback" not in res.output
    offline = write_manifest(tmp_path / "off.json", closed_port_url(), Served())
    res = runner.invoke(app, ["data", "download", "tiny_llmrouter", "--manifest", str(offline),
                              "--to", str(tmp_path / "e")])
    assert res.exit_code == 2 and "SourceUnreachable" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["data", "download", "tiny_llmrouter", "--manifest", str(manifest),
                              "--sha256", "oops"])
    assert res.exit_code == 2 and "FILE=HEX" in res.output
