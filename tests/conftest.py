"""Suite-wide set-up: offline litellm, the fake provider plugin, the outcome-data location, and a private
settlement-spool directory per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

pytest_plugins = ["tests.harness.plugin", "tests.harness.redis_server", "tests.harness.browser"]

DATA = Path(os.environ.get("CASCADE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _private_spool_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's settlement spools and ledger-generation markers (cascade.spool) in a directory of
    its own, never in ~/.cascade/spool (subprocesses inherit it through the environment)."""
    path = tmp_path_factory.mktemp("spool", numbered=True)
    monkeypatch.setenv("CASCADE_SPOOL_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "mmlu_pro" / "prompts.parquet").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"outcome data missing at {DATA}")
        pytest.skip(f"outcome data missing at {DATA}")
    return DATA
