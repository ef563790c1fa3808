"""cascade replay / calibrate / train through the command line (typer's CliRunner)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from tests.cascade.replay.helpers import write_folder, write_policy
from tests.cascade.replay.test_replay_folder import PROMPTS, outcomes, responses
from tests.cascade.replay.test_replay_traces import MAPS, write_traces

commands.register(app)
runner = CliRunner()


@pytest.fixture()
def setup(tmp_path):
    return write_policy(tmp_path), write_folder(tmp_path / "data", PROMPTS, outcomes(), responses())


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_replay_json(setup):
    policy, folder = setup
    res = invoke("replay", "--policy", policy, "--data", folder, "--split", "all", "--json", "--quiet")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["data"]["n_requests"] == 4 and doc["rows"]["policy"]["strong_share"] == 0.0   # short prompts: cheap
    assert doc["rows"]["policy"]["quality"] == 0.5 and doc["sweep"]["full"] is False


def test_replay_table_plot_and_html(setup, tmp_path):
    policy, folder = setup
    png, page = tmp_path / "f.png", tmp_path / "r.html"
    res = invoke("replay", "-p", policy, "--data", folder, "--split", "all", "--sweep", "--plot", png, "--html", page)
    assert res.exit_code == 0, res.output
    assert "always strong" in res.stdout and "frontier" in res.stdout.lower()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert '<img src="data:image/png;base64,' in text and "<table>" in text and "http" not in text.split("<body>")[1]


def test_replay_more_folders_after_data(setup, tmp_path):
    policy, folder = setup
    other = write_folder(tmp_path / "other", PROMPTS, outcomes(), responses())
    res = invoke("replay", "-p", policy, "--data", folder, other, "--split", "all", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["data"]["n_requests"] == 8


def test_replay_traces(tmp_path):
    policy = write_policy(tmp_path)
    res = invoke("replay", "-p", policy, "--traces", write_traces(tmp_path / "t.jsonl"), "--map", MAPS[0],
                 "--map", MAPS[1], "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["data"]["kind"] == "traces"


@pytest.mark.parametrize("extra, message", [
    (["--data", "/nonexistent/folder"], "no such data folder"),
    (["--data", "{folder}", "--map", "gpt-5=x"], "not a rung"),
    (["--data", "{folder}", "--split", "dev"], "--split"),
    (["--data", "{folder}", "--traces", "{folder}/x.jsonl"], "not both"),
])
def test_replay_errors_exit_2_without_traceback(setup, extra, message):
    policy, folder = setup
    res = invoke("replay", "-p", policy, *[e.format(folder=folder) for e in extra])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_replay_bad_policy_exits_2(setup, tmp_path):
    _, folder = setup
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncatalog: {}\n")
    res = invoke("replay", "-p", bad, "--data", folder)
    assert res.exit_code == 2 and "ConfigError" in res.output


def test_calibrate_cli(setup, tmp_path):
    policy, _ = setup
    texts = [(f"p{i}", f"calibration prompt {i}", 100) for i in range(300)]
    rows = [(f"p{i}", m, float((i * (3 if m == "S" else 1)) % 2), 20, None) for i in range(300) for m in ("C", "S")]
    data = write_folder(tmp_path / "cal", texts, rows, [(f"p{i}", m, "answer") for i in range(300) for m in ("C", "S")])
    res = invoke("calibrate", "--policy", policy, "--data", data, "--target", "strong-share=0.5", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["calibration"]["strong_share"] <= 0.5 and "test" in doc
    res = invoke("calibrate", "--policy", policy, "--data", data, "--target", "quality=0.8")
    assert res.exit_code == 0 and "calibrated" in res.stdout and "test" in res.stdout
    for bad in (["--target", "quality=lots"], ["--target", "quality=0.9", "--policy", "default"]):
        res = invoke("calibrate", "--policy", policy, "--data", data, *bad)
        assert res.exit_code == 2 and "ConfigError" in res.output


def test_train_errors_exit_2(tmp_path):
    res = invoke("train", "--data", tmp_path / "none", "--cheap", "a", "--strong", "b", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "not an outcome folder" in " ".join(res.output.split())


@pytest.mark.skipif(importlib.util.find_spec("classifiers.training.train") is not None,
                    reason="classifiers.training.train exists")
def test_train_without_the_trainer_says_so(setup, tmp_path):
    _, folder = setup
    res = invoke("train", "--data", folder, "--cheap", "C", "--strong", "S", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "classifiers.training.train" in " ".join(res.output.split())



def test_train_without_scikit_learn_names_the_extra(setup, tmp_path, monkeypatch):
    """The trainers import scikit-learn when ``cascade train`` looks them up, so a build without the
    ``train`` extra is told what to install before any data is read."""
    for name in [m for m in sys.modules if m.startswith(("sklearn.", "classifiers.training."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    _, folder = setup
    res = invoke("train", "--data", folder, "--cheap", "C", "--strong", "S", "--out", tmp_path / "m")
    assert res.exit_code == 2 and "deepseek-cascade[train]" in " ".join(res.output.split())

def test_import_cascade_stays_light():
    code = ("import sys, cascade, cascade.commands, cascade.replay; "
            "print(sorted(m for m in ('matplotlib', 'pyarrow', 'litellm', 'sklearn', 'ruamel.yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("columns", [80, 100])
def test_replay_table_fits_the_terminal_and_explains_its_metrics(setup, columns):
    policy, folder = setup
    res = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1"}).invoke(
        app, ["replay", "-p", str(policy), "--data", str(folder), "--split", "all", "--sweep", "--quiet"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, [line for line in lines if len(line) > columns]
    if columns >= 100:                                          # at 80 a few headers are still cut
        assert "…" not in res.stdout                             # no label or number is cut
        for cell in ("policy (classifier + checks)", "always strong", "oracle", "APGR", "CPT(80%)", "AIQ"):
            assert cell in res.stdout
    glossary = " ".join(res.stdout.split())
    assert "APGR (average performance gap recovered)" in glossary
    for word in ("CPT(50%) / CPT(80%):", "AIQ:", "retained:", "escalation:", "(retained above 100%, APGR above 1)"):
        assert word in glossary


def test_report_notes_are_whole_sentences(setup):
    policy, folder = setup
    doc = json.loads(invoke("replay", "--policy", policy, "--data", folder, "--split", "all", "--json", "--quiet").stdout)
    assert doc["notes"] and all(not note.rstrip().endswith((" is", ",", ";")) for note in doc["notes"])
    assert any("the per-request budget is replayed" in note for note in doc["notes"])
