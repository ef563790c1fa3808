"""Suite-wide set-up: offline litellm, the fake provider plugin, and the outcome-data location."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")

pytest_plugins = ["tests.harness.plugin", "tests.harness.redis_server"]

DATA = Path(os.environ.get("CASCADE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "mmlu_pro" / "prompts.parquet").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"outcome data missing at {DATA}")
        pytest.skip(f"outcome data missing at {DATA}")
    return DATA
