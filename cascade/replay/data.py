"""Recorded outcomes as replay reads them: one row per request, one column per rung of the policy's text
ladder. Outcome folders (prompts / outcomes / responses parquet + meta.json) are streamed in batches
with pyarrow, keeping only the prompts of the chosen split and the outcomes of the mapped models;
Router JSONL traces are read by :mod:`cascade.replay.traces`.

Model mapping (policy catalog alias -> the dataset's model name): ``--map alias=model`` first; else the
ladder's first rung is meta.json ``cheap`` and its last rung meta.json ``strong``.
Cost of an outcome: the dataset's ``cost_usd`` when it has one, else the alias's catalog price x
(prompt_tokens, completion_tokens).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.schema import Policy

UNITS = 1_000_000_000          # quality is summed as integer units of 1e-9: sums are exact in any order
NANO = 1_000_000_000           # cost is summed as integer nano-dollars (as the budget stores do)
SPLIT_CHOICES = ("test", "calibration", "train", "all")
TOKENS_PER_MESSAGE = 4         # what the router adds per message when it counts a prompt (cascade.tokens)


@dataclass
class ReplayData:
    """Per-request outcomes of each rung's model. Arrays are (N,) or (N, R) with R = rungs."""

    kind: str                                  # "outcomes" | "traces"
    sources: tuple[str, ...]
    aliases: tuple[str, ...]                   # the policy's text ladder, in order
    mappings: tuple[dict[str, str], ...]       # per source: alias -> dataset model
    source: np.ndarray                         # (N,) index into sources
    ids: list[str]
    prompts: list[str] | None                  # None: traces recorded without their text
    prompt_tokens: np.ndarray                  # (N,) recorded prompt tokens (priced)
    plan_tokens: np.ndarray                    # (N,) what the router would count when planning
    available: np.ndarray                      # (N, R) an answer was recorded
    missing: np.ndarray                        # (N, R) nothing recorded at all (not even a failed call)
    quality: np.ndarray                        # (N, R) in [0, 1], 0 where unavailable
    cost_usd: np.ndarray                       # (N, R) USD of the call, 0 where unavailable
    cost_recorded: np.ndarray                  # (N, R) cost from the data (else catalog price x tokens)
    completion_tokens: np.ndarray              # (N, R) -1 where unknown
    responses: list[list[str | None]] | None = None        # per rung, per request
    recorded_checks: list[list[dict | None]] | None = None  # traces: per rung, per request {name: (passed, score)}
    recorded_scores: np.ndarray | None = None  # traces: the classifier score written in the trace
    split: str = "all"
    consult_aliases: tuple[str, ...] = ()      # second-opinion models of the policy's agreement checks
    consult_available: np.ndarray | None = None   # (N, C) an answer of that model was recorded
    consult_cost_usd: np.ndarray | None = None    # (N, C)
    consult_responses: list[list[str | None]] | None = None   # per consult model, per request
    dropped: int = 0                           # requests left out for want of an outcome of some rung
    sessions: np.ndarray | None = None         # traces: (N,) object, each request's session_id or None
    session_ts: np.ndarray | None = None       # traces: (N,) when it was made (session pins expire)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def quality_units(self) -> np.ndarray:
        return np.rint(self.quality * UNITS).astype(np.int64)

    @property
    def cost_nano(self) -> np.ndarray:
        """Per-call cost in nano-dollars, rounded as ``policies.budget.to_nano`` rounds."""
        return np.floor(self.cost_usd * NANO + 0.5).astype(np.int64)

    def subset(self, mask: np.ndarray) -> "ReplayData":
        idx = np.flatnonzero(mask)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.shape[:1] == (len(self),):
                changes[f.name] = value[idx]
        changes["ids"] = [self.ids[i] for i in idx]
        if self.prompts is not None:
            changes["prompts"] = [self.prompts[i] for i in idx]
        for name in ("responses", "recorded_checks", "consult_responses"):
            rows = getattr(self, name)
            if rows is not None:
                changes[name] = [[col[i] for i in idx] for col in rows]
        return replace(self, **changes)


def check_split(split: str) -> None:
    """``test`` / ``calibration`` / ``train`` / ``all``, or several joined by ``+`` (``calibration+test``)."""
    if split == "all":
        return
    for name in split.split("+"):
        if name not in SPLIT_CHOICES or name == "all":
            raise ConfigError(f"--split {split!r}: expected one of {', '.join(SPLIT_CHOICES)}")


def parse_maps(items: Iterable[str]) -> dict[str, str]:
    """``["alias=model", ...]`` -> dict; ConfigError on a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        alias, sep, model = item.partition("=")
        if not sep or not alias.strip() or not model.strip():
            raise ConfigError(f"--map {item!r}: expected ALIAS=DATASET_MODEL (e.g. deepseek-v2=DeepSeek-V2-Chat)")
        out[alias.strip()] = model.strip()
    return out


def text_ladder(policy: Policy) -> tuple[str, ...]:
    return tuple(r.model for r in policy.escalation.ladders["text"])


def consult_models(policy: Policy) -> tuple[str, ...]:
    """The second-opinion models of the text ladder's agreement checks, in ladder order."""
    found = [str(c.param("with")) for rung in policy.escalation.ladders["text"] for c in policy.checks_for(rung)
             if c.name == "agreement"]
    return tuple(dict.fromkeys(found))


def check_maps(policy: Policy, maps: Mapping[str, str]) -> None:
    known = text_ladder(policy) + consult_models(policy)
    for alias in maps:
        if alias not in known:
            raise ConfigError(f"--map {alias}=...: {alias!r} is not a rung of policy {policy.name!r}'s text "
                              f"ladder nor a second opinion of it ({', '.join(known)})")


def policy_needs_responses(policy: Policy) -> bool:
    """Whether any text-ladder rung has a check that reads the answer text."""
    return any(spec.name != "not_truncated" for rung in policy.escalation.ladders["text"]
               for spec in policy.checks_for(rung))


def resolve_mapping(policy: Policy, meta: Mapping[str, Any], maps: Mapping[str, str], where: str) -> dict[str, str]:
    """alias -> dataset model: ``--map`` first, then meta.json ``aliases`` ({alias: model}), then its
    cheap / strong pair for the ladder's first / last rung."""
    ladder = text_ladder(policy)
    named = meta.get("aliases") if isinstance(meta.get("aliases"), dict) else {}
    out: dict[str, str] = {}
    for alias in consult_models(policy):
        if alias in maps or alias in named:
            out[alias] = str(maps.get(alias) or named[alias])
        else:
            raise ConfigError(f"{where}: no dataset model for {alias!r}, the second opinion of an agreement "
                              f"check: give --map {alias}=MODEL")
    for i, alias in enumerate(ladder):
        if alias in maps or alias in named:
            out[alias] = str(maps.get(alias) or named[alias])
        elif i == 0 and meta.get("cheap"):
            out[alias] = str(meta["cheap"])
        elif i == len(ladder) - 1 and meta.get("strong"):
            out[alias] = str(meta["strong"])
        else:
            raise ConfigError(f"{where}: no dataset model for rung {i} ({alias!r}) of the text ladder "
                              f"(meta.json names no cheap/strong pair for it): give --map {alias}=MODEL")
    return out


def require_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such data folder", source=str(folder))
    for name in ("prompts.parquet", "outcomes.parquet"):
        if not (folder / name).is_file():
            raise ConfigError(f"{folder}: not an outcome folder (no {name})", source=str(folder))


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable meta.json: {exc}", source=str(path)) from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: meta.json must hold an object", source=str(path))
    return meta


def load_outcome_folders(folders: Sequence[str | Path], policy: Policy, maps: Mapping[str, str], split: str,
                         *, tick: Callable[[str], None] | None = None, strict: bool = True) -> ReplayData:
    """Read one or more outcome folders for ``policy``'s text ladder (pooled, in order). ``strict=False``
    (a partition of a folder, :mod:`cascade.replay.spill`): a mapped model may have no outcome in it."""
    check_split(split)
    if not folders:
        raise ConfigError("no data folder given (--data DIR)")
    check_maps(policy, maps)
    want_text = policy_needs_responses(policy)
    parts = [_load_folder(Path(f), i, policy, maps, split, want_text, tick, strict) for i, f in enumerate(folders)]
    data = parts[0] if len(parts) == 1 else _concat(parts)
    if not want_text:
        data.notes.append("no check of the policy reads the answer text: responses.parquet not read")
    return data


def _load_folder(folder: Path, index: int, policy: Policy, maps: Mapping[str, str], split: str,
                 want_text: bool, tick: Callable[[str], None] | None, strict: bool = True) -> ReplayData:
    require_folder(folder)
    mapping = resolve_mapping(policy, read_meta(folder), maps, str(folder))
    from pyarrow import ArrowException

    from cascade.replay import arrow
    try:
        prompts = arrow.read_prompts(folder / "prompts.parquet", split, tick)
        table = arrow.read_outcomes(folder / "outcomes.parquet", prompts.ids_array, list(dict.fromkeys(mapping.values())), tick,
                                   strict=strict)
        responses = None
        if want_text and (folder / "responses.parquet").is_file():
            responses = arrow.read_responses(folder / "responses.parquet", prompts.ids_array, table.models, tick)
    except ConfigError:
        raise
    except (ArrowException, OSError, ValueError) as exc:  # a malformed or unreadable file
        raise ConfigError(f"{folder}: cannot read the outcome folder: {type(exc).__name__}: {exc}",
                          source=str(folder)) from None
    return _assemble(folder, index, policy, mapping, split, prompts, table, responses, want_text)


def _assemble(folder: Path, index: int, policy: Policy, mapping: dict[str, str], split: str, prompts: Any,
              table: Any, responses: list[list[str | None]] | None, want_text: bool) -> ReplayData:
    aliases = text_ladder(policy)
    cols = [table.models.index(mapping[a]) for a in aliases]
    consulted = consult_models(policy)
    ccols = [table.models.index(mapping[a]) for a in consulted]
    n = len(prompts.ids)
    available = ~np.isnan(table.score[:, cols])
    keep = available.all(axis=1)
    pt = prompts.tokens
    completion = table.completion[:, cols]
    recorded_cost = table.cost[:, cols]
    priced = np.empty_like(recorded_cost)
    for r, alias in enumerate(aliases):
        price = policy.catalog[alias].price
        priced[:, r] = (pt * price.input_per_1m + np.nan_to_num(completion[:, r]) * price.output_per_1m) / 1e6
    cost_recorded = ~np.isnan(recorded_cost)
    data = ReplayData(
        kind="outcomes", sources=(str(folder),), aliases=aliases, mappings=(mapping,),
        source=np.full(n, index, dtype=np.int16), ids=prompts.ids, prompts=prompts.texts,
        prompt_tokens=pt.astype(np.int64), plan_tokens=pt.astype(np.int64) + TOKENS_PER_MESSAGE,
        available=available, missing=~available, quality=np.nan_to_num(table.score[:, cols]),
        cost_usd=np.where(available, np.where(cost_recorded, recorded_cost, priced), 0.0),
        cost_recorded=cost_recorded & available,
        completion_tokens=np.where(np.isnan(completion), -1, completion).astype(np.int64),
        responses=None if responses is None else [responses[c] for c in cols], split=split,
        consult_aliases=consulted, **_consult_columns(policy, consulted, ccols, table, pt, responses))
    if consulted:      # a second opinion not recorded: what the policy would do is not known either
        keep &= data.consult_available.all(axis=1)
    data = data.subset(keep)
    data.dropped = int(n - keep.sum())
    data.notes += folder_notes(folder.name, data, want_text and responses is None)
    return data


def folder_notes(name: str, data: ReplayData, no_responses: bool) -> list[str]:
    """What the report says of one folder's data: prompts left out, answer texts or prices missing."""
    notes = []
    if data.dropped:
        second = (f" or of a second-opinion model ({', '.join(data.consult_aliases)})" if data.consult_aliases else "")
        notes.append(f"{name}: {data.dropped} prompt(s) of the split lack an outcome of some rung's model{second}: "
                     "left out")
    if no_responses:
        notes.append(f"{name}: no responses.parquet: answer checks cannot be evaluated (counted as passed)")
    unknown_completion = int(((data.completion_tokens < 0) & ~data.cost_recorded).sum())
    if unknown_completion:
        notes.append(f"{name}: {unknown_completion} outcome(s) have neither cost_usd nor completion_tokens: "
                     "priced on prompt tokens only")
    return notes


def _consult_columns(policy: Policy, aliases: tuple[str, ...], cols: list[int], table: Any, pt: np.ndarray,
                     responses: list[list[str | None]] | None) -> dict[str, Any]:
    """The second-opinion models' outcomes: whether one was recorded, its cost (recorded, else the
    catalog price x tokens) and its answer text."""
    available = ~np.isnan(table.score[:, cols]) if cols else np.zeros((len(pt), 0), bool)
    cost = np.zeros(available.shape)
    for c, alias in enumerate(aliases):
        price = policy.catalog[alias].price
        recorded, completion = table.cost[:, cols[c]], np.nan_to_num(table.completion[:, cols[c]])
        priced = (pt * price.input_per_1m + completion * price.output_per_1m) / 1e6
        cost[:, c] = np.where(available[:, c], np.where(np.isnan(recorded), priced, recorded), 0.0)
    texts = None if responses is None else [responses[c] for c in cols]
    return {"consult_available": available, "consult_cost_usd": cost, "consult_responses": texts}


def _concat(parts: list[ReplayData]) -> ReplayData:
    first = parts[0]
    arrays = {f.name: np.concatenate([getattr(p, f.name) for p in parts])
              for f in fields(first) if isinstance(getattr(first, f.name), np.ndarray)}
    responses = None
    if any(p.responses is not None for p in parts):
        responses = [sum(([None] * len(p) if p.responses is None else p.responses[r] for p in parts), [])
                     for r in range(len(first.aliases))]
    consult = None
    if any(p.consult_responses is not None for p in parts):
        consult = [sum(([None] * len(p) if p.consult_responses is None else p.consult_responses[c] for p in parts), [])
                   for c in range(len(first.consult_aliases))]
    return replace(first, **arrays, consult_responses=consult, sources=tuple(s for p in parts for s in p.sources),
                   mappings=tuple(m for p in parts for m in p.mappings),
                   ids=[i for p in parts for i in p.ids], prompts=[t for p in parts for t in (p.prompts or [])],
                   responses=responses, dropped=sum(p.dropped for p in parts),
                   notes=[n for p in parts for n in p.notes])
