"""The examples run: without keys they say what to set and exit 0; against the fake provider they answer."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PROVIDER_VARS = ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_BASE", "OPENAI_API_BASE",
                 "DEEPSEEK_VL2_API_KEY", "DEEPSEEK_OCR_API_KEY", "CASCADE_BUDGET_STORE")
REFUSAL = "I'm sorry, but I can't help with that."


def run_example(name: str, *args: str, env: dict[str, str] | None = None, home: Path,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    base.update(HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
                PYTHONPATH=os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]))
    base.update(env or {})
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", ["quickstart.py", "async_batch.py"])
def test_without_keys_prints_what_to_set_and_exits_0(name: str, tmp_path: Path) -> None:
    proc = run_example(name, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for var in ("DEEPSEEK_API_KEY", "OPENAI_API_KEY", "DEEPSEEK_API_BASE", "OPENAI_API_BASE"):
        assert var in proc.stdout
    assert "nothing was called" in proc.stdout
    assert not (tmp_path / ".cascade").exists()          # no Router, no ledger file


def test_quickstart_against_the_fake_provider(spawn_fake_provider: Any, tmp_path: Path) -> None:
    server = spawn_fake_provider({"fallback": {"default": {"kind": "answer", "content": "Paris."}}})
    env = {"DEEPSEEK_API_KEY": "sk-test-1", "OPENAI_API_KEY": "sk-test-2",
           "DEEPSEEK_API_BASE": server.url, "OPENAI_API_BASE": server.url,
           "CASCADE_BUDGET_STORE": f"sqlite:///{tmp_path}/spend.db"}
    proc = run_example("quickstart.py", env=env, home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("dry run (no call): score") == 2
    # Which model answers depends on the shipped classifier and answer checker; the example must show
    # it, and every call it shows must have reached the provider.
    assert out.count("outcome ok") + out.count("outcome best_answer") == 2
    assert "model deepseek-v2, escalated" in out          # the easy prompt starts cheap
    models = server.tally()["models"]
    calls = sum(m["requests"] for m in models.values())
    assert 2 <= calls <= 4 and models["deepseek-chat"]["requests"] >= 1


def test_async_batch_against_the_fake_provider(spawn_fake_provider: Any, tmp_path: Path) -> None:
    # DeepSeek-V2 refuses the haiku: its answer fails no_refusal and GPT-4o answers instead.
    script = {"models": {"deepseek-chat": {"default": {"kind": "answer", "rules": [["haiku", REFUSAL]]}}},
              "fallback": {"default": {"kind": "answer"}}}
    server = spawn_fake_provider(script)
    proc = run_example("async_batch.py", "--base-url", server.url, "--budget-store", "memory://",
                       "--concurrency", "4", home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "placeholder key" in out
    assert "answered:    12/12" in out
    assert "refusals:    0" in out
    assert "escalations: " in out and "by model:    " in out
    models = server.tally()["models"]
    # the refused haiku escalates, so GPT-4o is called at least once; every answer is accounted for
    assert models["gpt-4o"]["requests"] >= 1
    assert models["deepseek-chat"]["requests"] + models["gpt-4o"]["requests"] >= 12


def test_async_batch_refuses_over_the_user_cap(spawn_fake_provider: Any, tmp_path: Path) -> None:
    server = spawn_fake_provider({"fallback": {"default": {"kind": "answer"}}})
    # $0.0002 per user is less than one DeepSeek-V2 reservation (~$0.0003 at max_tokens 1024): every item
    # is refused, each on its own, and the batch still finishes with its summary.
    proc = run_example("async_batch.py", "--base-url", server.url, "--budget-store", "memory://",
                       "--user-cap", "0.0002", home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("REFUSED (BudgetExceeded)") == 12
    assert "answered:    0/12" in proc.stdout and "refusals:    12 (BudgetExceeded 12)" in proc.stdout
    assert sum(m["requests"] for m in server.tally()["models"].values()) == 0
