"""Read the routing outcome data sets (``prompts`` / ``outcomes`` / ``responses`` parquet tables).

Training and benchmarks only: imports pyarrow lazily. One :class:`RoutingData` per folder holds
the prompts and per-model score / token / cost matrices aligned on prompt order (NaN = missing;
duplicate (prompt, model) rows are averaged).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.splits import Split, split_array

#: USD per 1M (input, output) tokens for models whose data carries no cost_usd (2024 list prices).
PRICES_PER_1M: dict[str, tuple[float, float]] = {
    "DeepSeek-V2-Chat(api,2024-05)": (0.14, 0.28),
    "gpt-4o-2024-05-13": (5.0, 15.0),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (0.6, 0.6),
    "gpt-4-1106-preview": (10.0, 30.0),
}


#: the natural (cheap, strong) pair of folders whose meta.json does not name one (see DATA.md)
NATURAL_PAIRS: dict[str, tuple[str, str]] = {
    "llmrouter": ("llama-3.1-8b-instruct", "llama-3.1-nemotron-51b-instruct"),
}


@dataclass(frozen=True)
class RoutingData:
    """One data set: prompts and per-model outcome matrices of shape (n_prompts, n_models)."""

    name: str
    prompt_ids: np.ndarray
    prompts: list[str]
    tasks: np.ndarray
    prompt_tokens: np.ndarray
    models: tuple[str, ...]
    scores: np.ndarray
    completion_tokens: np.ndarray
    cost_usd: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    splits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def cheap(self) -> str:
        return self.meta["cheap"]

    @property
    def strong(self) -> str:
        return self.meta["strong"]

    def col(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise KeyError(f"{self.name}: no model {model!r}; has {list(self.models)}") from None

    def score_of(self, model: str) -> np.ndarray:
        return self.scores[:, self.col(model)]

    def subset(self, mask: np.ndarray) -> "RoutingData":
        idx = np.flatnonzero(mask)
        return replace(self, prompt_ids=self.prompt_ids[idx], prompts=[self.prompts[i] for i in idx],
                       tasks=self.tasks[idx], prompt_tokens=self.prompt_tokens[idx],
                       scores=self.scores[idx], completion_tokens=self.completion_tokens[idx],
                       cost_usd=self.cost_usd[idx],
                       splits=None if self.splits is None else self.splits[idx])

    def with_pair(self, cheap: str | None = None, strong: str | None = None) -> "RoutingData":
        """Rows where both models of the pair have a score."""
        c, s = self.col(cheap or self.cheap), self.col(strong or self.strong)
        return self.subset(~np.isnan(self.scores[:, c]) & ~np.isnan(self.scores[:, s]))

    def split(self, *names: Split) -> "RoutingData":
        return self.subset(np.isin(self.split_names(), list(names)))

    def split_names(self) -> np.ndarray:
        return self.splits if self.splits is not None else split_array(self.prompts)

    def cost_of(self, model: str) -> np.ndarray:
        """USD per prompt: ``cost_usd`` where given, else tokens x :data:`PRICES_PER_1M` (or meta)."""
        j = self.col(model)
        given = self.cost_usd[:, j]
        if not np.isnan(given).any():
            return given
        price_in, price_out = self._price(model)
        completion = np.nan_to_num(self.completion_tokens[:, j], nan=0.0)
        estimate = (self.prompt_tokens * price_in + completion * price_out) / 1e6
        return np.where(np.isnan(given), estimate, given)

    def _price(self, model: str) -> tuple[float, float]:
        if model in PRICES_PER_1M:
            return PRICES_PER_1M[model]
        per_out = self.meta.get("usd_per_1M_output_tokens", {})
        if model in per_out:  # llmrouter gives one price per 1M tokens; applied to in and out
            return float(per_out[model]), float(per_out[model])
        raise KeyError(f"{self.name}: no price for {model!r}")


def load_dataset(folder: str | Path) -> RoutingData:
    """Read one data folder into a :class:`RoutingData` (splits computed once)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    prompts_t = pq.read_table(folder / "prompts.parquet").to_pydict()
    ids = prompts_t["prompt_id"]
    index = {pid: i for i, pid in enumerate(ids)}
    out = pq.read_table(folder / "outcomes.parquet").to_pydict()
    models = tuple(sorted(set(out["model"])))
    mcol = {m: j for j, m in enumerate(models)}
    shape = (len(ids), len(models))
    mats = {k: np.zeros(shape) for k in ("score", "completion_tokens", "cost_usd")}
    counts = {k: np.zeros(shape) for k in mats}
    rows = np.array([index[p] for p in out["prompt_id"]])
    cols = np.array([mcol[m] for m in out["model"]])
    for key in mats:
        vals = np.array([np.nan if v is None else float(v) for v in out[key]])
        ok = ~np.isnan(vals)
        np.add.at(mats[key], (rows[ok], cols[ok]), vals[ok])
        np.add.at(counts[key], (rows[ok], cols[ok]), 1.0)
        with np.errstate(invalid="ignore"):
            mats[key] = np.where(counts[key] > 0, mats[key] / np.maximum(counts[key], 1), np.nan)
    meta.setdefault("name", folder.name)
    if "cheap" not in meta and folder.name in NATURAL_PAIRS:
        meta["cheap"], meta["strong"] = NATURAL_PAIRS[folder.name]
    prompts = [str(p) for p in prompts_t["prompt"]]
    return RoutingData(name=folder.name, prompt_ids=np.array(ids, dtype=object), prompts=prompts,
                       tasks=np.array(prompts_t["task"], dtype=object),
                       prompt_tokens=np.array(prompts_t["prompt_tokens"], dtype=np.float64),
                       models=models, scores=mats["score"],
                       completion_tokens=mats["completion_tokens"], cost_usd=mats["cost_usd"],
                       meta=meta, splits=split_array(prompts))


def load_responses(folder: str | Path, data: RoutingData, model: str) -> list[str | None]:
    """The ``model``'s response text for each prompt of ``data`` (None where there is none)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(folder) / "responses.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{folder}: no responses.parquet")
    table = pq.read_table(path)
    table = table.filter(pc.equal(table["model"], model)).to_pydict()
    by_id = dict(zip(table["prompt_id"], table["response"]))
    return [by_id.get(pid) for pid in data.prompt_ids]
