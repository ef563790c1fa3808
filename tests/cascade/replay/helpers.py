"""Tiny outcome folders, policies and scorers for the replay tests (written in tmp_path)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# cheap: $1 / $2 per 1M tokens; strong: $10 / $20. With 1,000 prompt and 500 completion tokens a cheap
# answer costs $0.002 and a strong one $0.02.
POLICY = """\
# a tiny test policy
name: tiny
description: two rungs  # kept comment
catalog:
  cheap:
    litellm_model: openai/cheap
    price: {input_per_1m: 1.0, output_per_1m: 2.0}
    context_window: 100000
    max_output_tokens: 1000
    capabilities: [text]
    strength: 1
  mid:
    litellm_model: openai/mid
    price: {input_per_1m: 4.0, output_per_1m: 8.0}
    context_window: 100000
    max_output_tokens: 1000
    capabilities: [text]
    strength: 5
  strong:
    litellm_model: openai/strong
    price: {input_per_1m: 10.0, output_per_1m: 20.0}
    context_window: 100000
    max_output_tokens: 1000
    capabilities: [text]
    strength: 10
routing:
  classifier: heuristic
  # the threshold calibrate rewrites
  thresholds: [0.5]
  default_max_tokens: 100
escalation:
  ladders:
    text: [cheap, strong]
  checks: [non_empty]
  on_exhausted: best_answer
budgets:
  store: "memory://"
"""


def write_policy(tmp: Path, text: str = POLICY, name: str = "tiny.yaml", **replace: str) -> Path:
    for old, new in replace.items():
        assert old.replace("_", " ") in text or old in text, old
        text = text.replace(old, new)
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def write_folder(folder: Path, prompts: Sequence[tuple[str, str, int]], outcomes: Sequence[tuple],
                 responses: Sequence[tuple[str, str, str]] | None = None,
                 meta: dict[str, Any] | None = None) -> Path:
    """prompts: (id, text, tokens); outcomes: (id, model, score, completion_tokens, cost_usd|None);
    responses: (id, model, text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"prompt_id": [p[0] for p in prompts], "task": ["t"] * len(prompts),
                             "prompt": [p[1] for p in prompts], "prompt_tokens": [p[2] for p in prompts]}),
                   folder / "prompts.parquet")
    cols = list(zip(*outcomes)) if outcomes else [[]] * 5
    pq.write_table(pa.table({"prompt_id": pa.array(cols[0], pa.string()), "model": pa.array(cols[1], pa.string()),
                             "score": pa.array(cols[2], pa.float64()),
                             "completion_tokens": pa.array(cols[3], pa.int64()),
                             "cost_usd": pa.array(cols[4], pa.float64())}), folder / "outcomes.parquet")
    if responses is not None:
        r = list(zip(*responses)) if responses else [[]] * 3
        pq.write_table(pa.table({"prompt_id": pa.array(r[0], pa.string()), "model": pa.array(r[1], pa.string()),
                                 "response": pa.array(r[2], pa.string())}), folder / "responses.parquet")
    (folder / "meta.json").write_text(json.dumps(meta if meta is not None else {"cheap": "C", "strong": "S"}))
    return folder


class TableScorer:
    """A classifier whose score of a prompt is looked up (default 0.0)."""

    name = "table"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.table.get(t, 0.0) for t in texts], dtype=np.float64)

    def score_one(self, text: str) -> float:
        return float(self.score([text])[0])


class AnswerTable:
    """An answer checker whose P(inadequate) of an answer is looked up (default 0.0)."""

    name = "answer-table"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        return np.array([self.table.get(a, 0.0) for a in answers], dtype=np.float64)

    def score_one(self, prompt: str, answer: str) -> float:
        return float(self.score([prompt], [answer])[0])


def data_root() -> Path | None:
    """The shared outcome data (CASCADE_DATA or ../shared/data beside the repo), or None."""
    root = Path(os.environ.get("CASCADE_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
    return root if (root / "mmlu_pro" / "prompts.parquet").is_file() else None
