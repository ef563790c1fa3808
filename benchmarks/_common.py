"""Helpers shared by the benchmarks: data location, peer imports, percentiles."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("CASCADE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def data_dir(name: str) -> Path:
    path = DATA / name
    if not (path / "prompts.parquet").is_file():
        raise SystemExit(f"outcome data not found at {path} (set CASCADE_DATA to the folder holding {name}/)")
    return path


def sample_prompts(name: str, n: int, seed: int = 0) -> list[str]:
    import pyarrow.parquet as pq
    prompts = pq.read_table(data_dir(name) / "prompts.parquet", columns=["prompt"]).column("prompt").to_pylist()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(prompts), size=min(n, len(prompts)), replace=False)
    return [prompts[i] for i in idx]


def litellm_heuristic():
    """litellm's complexity-router heuristic classifier (``classify(prompt) -> (tier, score, signals)``)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from unittest.mock import MagicMock
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter
    return ComplexityRouter(model_name="bench", ctx=MagicMock())


def pct(values_s: list[float], q: float) -> float:
    """Percentile in microseconds."""
    return float(np.percentile(np.asarray(values_s) * 1e6, q))
