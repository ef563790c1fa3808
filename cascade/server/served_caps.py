"""The caps a ``cascade serve`` enforces, recorded beside its budget store so that ``cascade budget`` shows
remaining budget against the same caps without being told them again.

    record_caps(store, router.caps, policy="default", spool_dir=None)   # serve, at start-up
    read_caps(store, spool_dir=None)        # -> {"policy", "caps": (Cap, ...), "recorded_at", "path"} | None

Where: ``sqlite:///path/spend.db`` → ``path/spend.db.serve-caps.json`` (next to the database);
``redis://...`` → beside the store's settlement spool (``$CASCADE_SPOOL_DIR`` or ``--spool-dir``),
``<spool file>.serve-caps.json``; ``memory://`` → nowhere (its ledger dies with the process). The last
server started on a store wins (servers sharing a store should run with the same caps).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from policies.budget import Cap

__all__ = ["caps_path", "read_caps", "record_caps"]

_SUFFIX = ".serve-caps.json"


def caps_path(store: Any, spool_dir: str | os.PathLike[str] | None = None) -> Path | None:
    url = str(getattr(store, "url", ""))
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        return db.with_name(db.name + _SUFFIX)
    from cascade.spool import spool_path
    spool = spool_path(store, spool_dir)
    return None if spool is None else spool.with_name(spool.name + _SUFFIX)


def record_caps(store: Any, caps: Sequence[Cap], *, policy: str,
                spool_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Write the caps (atomically: a temporary file renamed over the last one); the file, or None for a
    store that keeps nothing."""
    path = caps_path(store, spool_dir)
    if path is None:
        return None
    doc = {"v": 1, "policy": policy, "store": store.url, "recorded_at": time.time(),
           "caps": [{"scope": c.scope, "window": c.window, "limit_usd": c.limit_usd} for c in caps]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_caps(store: Any, spool_dir: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """What the last ``cascade serve`` on ``store`` recorded, or None (never recorded, or unreadable)."""
    path = caps_path(store, spool_dir)
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        caps = tuple(Cap(c["scope"], c["window"], float(c["limit_usd"])) for c in doc["caps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"policy": doc.get("policy"), "caps": caps, "recorded_at": doc.get("recorded_at"), "path": str(path)}
