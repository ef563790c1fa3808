"""What an exact response cache would have done to a Router trace file (``cascade replay --traces``).

Requests are taken in the order they were written. A request *hits* when an earlier one with the same
key (policy, ``request_digest`` — its messages and answer-changing parameters — and, under ``scope:
user``, its user) left an answer in the cache no older than ``ttl_s``; it would then have cost $0
instead of its recorded ``cost_usd`` (a request that was a real hit counts what its stored answer
cost). A request *stores* when it is cacheable (temperature 0, or any under ``temperature_any``) and
its answer would have been stored: outcome ``ok`` with the accepted attempt's finish_reason ``stop``
or ``tool_calls``. Lines written before traces carried ``request_digest`` are counted apart.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from policies.cache import CacheConfig
from policies.errors import ConfigError

from cascade.cache.layer import STORED_FINISH


def cache_report(lines: Iterable[dict[str, Any]], config: CacheConfig | None = None) -> dict[str, Any]:
    config = config or CacheConfig()
    stored: dict[tuple, float] = {}
    n = cacheable = hits = unknown = 0
    saved = total = 0.0
    for doc in lines:
        n += 1
        total += float(doc.get("cost_usd") or 0.0)
        digest = doc.get("request_digest")
        if not digest:
            unknown += doc.get("outcome") != "refused"     # refused before its digest was taken: not old
            continue
        if not (config.temperature_any or doc.get("temperature") == 0):
            continue
        cacheable += 1
        key = (doc.get("policy"), digest, doc.get("user") if config.scope == "user" else None)
        ts = float(doc.get("ts") or 0.0)
        was = stored.get(key)
        if doc.get("cache_hit") or (was is not None and ts - was < config.ttl_s):
            hits += 1
            saved += float(doc.get("cache_saved_usd") or 0.0) if doc.get("cache_hit") else float(doc.get("cost_usd") or 0.0)
        elif _would_store(doc):
            stored[key] = ts
    return {"requests": n, "cacheable": cacheable, "hits": hits, "hit_rate": hits / n if n else 0.0,
            "saved_usd": saved, "cost_usd": total, "saved_share": saved / (saved + total) if saved + total else 0.0,
            "without_digest": unknown, "ttl_s": config.ttl_s, "scope": config.scope,
            "temperature_any": config.temperature_any}


def _would_store(doc: dict[str, Any]) -> bool:
    if doc.get("outcome") != "ok":
        return False
    accepted = [a for a in doc.get("attempts") or () if isinstance(a, dict) and a.get("model") == doc.get("model")
                and a.get("status") == "ok"]
    return bool(accepted) and accepted[-1].get("finish_reason") in STORED_FINISH


def trace_cache_report(path: str | Path, config: CacheConfig | None = None) -> dict[str, Any]:
    """:func:`cache_report` of a trace file (JSONL, or Parquet from ``cascade traces to-parquet``), its
    request lines sorted by their ``ts`` (stable); shadow and feedback lines are not requests."""
    docs = [{k: doc.get(k) for k in _FIELDS} for doc in _trace_lines(Path(path))
            if isinstance(doc, dict) and "kind" not in doc]
    docs.sort(key=lambda d: float(d.get("ts") or 0.0))
    return cache_report(docs, config)


_FIELDS = ("policy", "request_digest", "ts", "cost_usd", "user", "temperature", "outcome", "model", "attempts",
           "cache_hit", "cache_saved_usd")


def _trace_lines(path: Path) -> Iterable[Any]:
    from cascade.replay.traceparquet import is_parquet, iter_records
    if is_parquet(path):
        return iter_records(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read trace file: {exc}", source=str(path)) from None


def cache_lines(doc: dict[str, Any]) -> list[str]:
    """The report's text lines."""
    c = doc
    head = (f"exact response cache (ttl {c['ttl_s']:g} s, scope {c['scope']}"
            f"{', any temperature' if c['temperature_any'] else ', temperature 0 only'}): "
            f"{c['hits']:,} of {c['requests']:,} requests would hit ({c['hit_rate']:.1%}; "
            f"{c['cacheable']:,} cacheable), saving ${c['saved_usd']:.6f} "
            f"of ${c['saved_usd'] + c['cost_usd']:.6f} ({c['saved_share']:.1%})")
    out = [head]
    if c["without_digest"]:
        out.append(f"{c['without_digest']:,} trace lines carry no request_digest (written by an older version): "
                   "not counted as cacheable")
    return out
