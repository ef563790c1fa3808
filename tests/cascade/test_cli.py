"""The ``cascade`` command line through ``typer.testing.CliRunner``: validate and route (no model is called)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from policies.loader import BUILTIN_POLICIES, builtin_policy_path

commands.register(app)

# A wide terminal so that rich does not wrap file:line: field messages.
runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})

BROKEN = """\
extends: default
name: broken
routing:
  thresholds: [1.5]
budgets:
  per_request_usd: -1
escalation:
  checks:
    - telepathy
"""


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@pytest.fixture()
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def route_json(*args: str) -> dict:
    result = invoke("route", *args, "--json")
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    return json.loads(result.stdout)


# ---- validate ---------------------------------------------------------------------------------------------

def test_validate_builtins_by_name():
    result = invoke("validate", *BUILTIN_POLICIES)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(BUILTIN_POLICIES) and all(line.startswith("✓") for line in lines)
    for name, line in zip(BUILTIN_POLICIES, lines):
        assert f"policy '{name}'" in line
        assert "text: deepseek-v2 → gpt-4o" in line and "document: deepseek-ocr-2 → gpt-4o" in line
    assert result.stderr == ""


@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_validate_builtin_by_path(name):
    result = invoke("validate", str(builtin_policy_path(name)))
    assert result.exit_code == 0 and result.stdout.startswith("✓")


def test_validate_broken_file_exits_2_with_file_line_messages(cwd):
    (cwd / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = invoke("validate", "broken.yaml")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "✗ invalid policy broken.yaml:" in result.stderr
    assert "broken.yaml:4: routing.thresholds.0: must be less than or equal to 1, got 1.5" in result.stderr
    assert "broken.yaml:6: budgets.per_request_usd: must be greater than or equal to 0, got -1" in result.stderr
    assert "broken.yaml:9: escalation.checks.0: unknown check 'telepathy'" in result.stderr
    assert "✓" not in result.output


def test_validate_yaml_syntax_error(cwd):
    (cwd / "bad.yaml").write_text("name: x\ncatalog: {a: 1\n", encoding="utf-8")
    result = invoke("validate", "bad.yaml")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "bad.yaml:" in result.stderr and "YAML syntax error" in result.stderr


def test_validate_mixed_files_reports_each_and_exits_2(cwd):
    (cwd / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = invoke("validate", "default", "broken.yaml", "missing.yaml")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert result.stdout.startswith("✓ default")
    assert "broken.yaml:4:" in result.stderr
    assert "missing.yaml: no such policy file" in result.stderr


TWO_MISTAKES = """\
extends: default
name: two
budgets:
  per_usr:
    - {window: day, usd: 1.0}
escalation:
  ladders:
    text: [deepseek-v2, gpt4o]
"""


@pytest.mark.parametrize("columns", ["40", "100"])
def test_validate_reports_every_problem_of_a_file_unwrapped(cwd, columns):
    (cwd / "two.yaml").write_text(TWO_MISTAKES)
    narrow = CliRunner(env={"COLUMNS": columns, "NO_COLOR": "1"})
    result = narrow.invoke(app, ["validate", "two.yaml"])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == "✗ invalid policy two.yaml:"
    assert lines[1:] == [
        "two.yaml:4: budgets.per_usr: unknown field 'per_usr' (did you mean 'per_user'?); fields here: store, "
        "per_request_usd, per_user, per_team, per_org, per_key, global, at_cap, reservation_ttl_s, on_store_unavailable",
        "two.yaml:8: escalation.ladders.text.1: unknown model 'gpt4o' (did you mean 'gpt-4o'?); catalog has: "
        "deepseek-coder, deepseek-ocr-2, deepseek-v2, deepseek-vl2, gpt-4o"]


def test_validate_needs_a_file():
    result = invoke("validate")
    assert result.exit_code == 2
    assert_no_traceback(result)


def test_validate_prints_bracketed_field_paths_verbatim(cwd):
    (cwd / "modality.yaml").write_text("extends: default\nname: m\nescalation:\n  ladders:\n"
                                       "    text: [deepseek-v2]\n    pictures: [gpt-4o]\n", encoding="utf-8")
    result = invoke("validate", "modality.yaml")
    assert result.exit_code == 2
    assert "modality.yaml:6: escalation.ladders.pictures: key 'pictures' is not one of: text, vision, document" \
        in result.stderr


def test_validate_error_text_with_markup_like_brackets_does_not_crash(cwd):
    (cwd / "rx.yaml").write_text('extends: default\nname: rx\nescalation:\n  checks:\n'
                                 '    - {name: answer_format, pattern: "[/]("}\n', encoding="utf-8")
    result = invoke("validate", "rx.yaml")
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "rx.yaml:5: escalation.checks.0: check 'answer_format': invalid regex '[/]('" in result.stderr


# ---- route ------------------------------------------------------------------------------------------------

def test_route_json_has_score_and_plan():
    doc = route_json("What is the capital of France?")
    assert doc["policy"] == "default" and doc["modality"] == "text"
    assert 0.0 <= doc["score"] <= 1.0 and isinstance(doc["prompt_tokens"], int) and doc["prompt_tokens"] > 0
    assert doc["plan"], "at least one attempt"
    for attempt in doc["plan"]:
        assert {"model", "litellm_model", "reason", "est_cost_usd"} <= set(attempt)
        assert isinstance(attempt["est_cost_usd"], float) and attempt["est_cost_usd"] > 0
        assert attempt["reason"]
    assert "score" in doc["plan"][0]["reason"] and "threshold" in doc["plan"][0]["reason"]
    expected = ["deepseek-v2", "gpt-4o"] if doc["score"] < 0.5 else ["gpt-4o"]
    assert [a["model"] for a in doc["plan"]] == expected
    assert doc["plan"][0]["litellm_model"] == ("deepseek/deepseek-chat" if doc["score"] < 0.5 else "openai/gpt-4o")


def test_route_json_max_tokens_and_policy():
    doc = route_json("hello", "--max-tokens", "64", "--policy", "budget-strict")
    assert doc["policy"] == "budget-strict"
    assert all(a["params"]["max_tokens"] == 64 for a in doc["plan"])


def test_route_image_goes_to_deepseek_vl2(cwd):
    (cwd / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    doc = route_json("hi", "--image", "cat.png")
    assert doc["modality"] == "vision"
    assert doc["prompt_tokens"] >= 1024                           # the per-image estimate is counted
    assert doc["plan"][0]["model"] == "deepseek-vl2"
    assert doc["plan"][0]["litellm_model"] == "openai/deepseek-vl2"
    assert "deepseek-v2" not in [a["model"] for a in doc["plan"]]


def test_route_pdf_goes_to_deepseek_ocr_2(cwd):
    (cwd / "x.pdf").write_bytes(b"%PDF-1.4\n%fake\n")
    doc = route_json("hi", "--file", "x.pdf")
    assert doc["modality"] == "document"
    assert [a["model"] for a in doc["plan"]] == ["deepseek-ocr-2", "gpt-4o"]


def test_route_missing_image_exits_2_with_a_clear_message(cwd):
    result = invoke("route", "what is this?", "--image", "nope.png")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "nope.png: no such file" in result.stderr
    assert result.stdout == ""


def test_route_missing_file_exits_2(cwd):
    result = invoke("route", "summarise", "--file", "gone.pdf", "--json")
    assert result.exit_code == 2
    assert "gone.pdf: no such file" in result.stderr and result.stdout == ""


def test_route_broken_policy_exits_2(cwd):
    (cwd / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    result = invoke("route", "hi", "--policy", "broken.yaml")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "ConfigError" in result.stderr and "broken.yaml:4: routing.thresholds.0" in result.stderr


def test_route_bad_max_tokens_exits_2():
    result = invoke("route", "hi", "--max-tokens", "0")
    assert result.exit_code == 2
    assert_no_traceback(result)
    assert "InvalidRequestError" in result.stderr and "max_tokens must be a positive integer" in result.stderr


def test_route_table_output():
    result = invoke("route", "hello there")
    assert result.exit_code == 0, result.output
    assert "policy default" in result.stdout and "deepseek-v2" in result.stdout and "score" in result.stdout


def test_no_arguments_prints_help():
    result = invoke()
    assert "validate" in result.output and "route" in result.output


def test_route_prints_a_budget_refusal_as_the_plan(cwd):
    (cwd / "tight.yaml").write_text("extends: default\nname: tight\nrouting: {thresholds: [0.0]}\n"
                                    "budgets: {per_request_usd: 0.001, at_cap: reject}\n")
    doc = route_json("hard question", "--policy", "tight.yaml")
    assert doc["plan"] == [] and doc["refused"]["error"] == "BudgetExceeded"
    assert doc["refused"]["scope"] == "request" and doc["refused"]["limit_usd"] == 0.001
    assert "gpt-4o's worst case" in doc["refused"]["message"] and "deepseek-v2 fits" in doc["refused"]["message"]
    result = CliRunner(env={"COLUMNS": "60", "NO_COLOR": "1"}).invoke(app, ["route", "hard question", "--policy",
                                                                          "tight.yaml"])
    assert result.exit_code == 0, result.output
    refused = [line for line in result.stdout.splitlines() if line.startswith("refused (BudgetExceeded): ")]
    assert refused == [f"refused (BudgetExceeded): {doc['refused']['message']}"]


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip().startswith("deepseek-cascade ")


def test_a_text_file_is_text_not_a_scanned_document(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes: buy milk\n", encoding="utf-8")
    result = invoke("route", "Summarise these notes", "--file", str(notes), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["modality"] == "text" and doc["plan"][0]["model"] == "deepseek-v2"


def test_a_text_file_part_counts_as_text():
    import base64
    from policies.request import describe_messages
    data = "data:text/plain;base64," + base64.b64encode(b"the notes").decode()
    facts = describe_messages([{"role": "user", "content": [{"type": "text", "text": "Summarise"},
                                                            {"type": "file", "file": {"file_data": data}}]}])
    assert (facts.n_documents, facts.text) == (0, "Summarise\nthe notes")
