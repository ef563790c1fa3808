"""Spend and remaining budget, per user and globally, from any budget store (``cascade budget``).

    caps = budget_caps(load_policy("default"), global_cap_usd=10.0)       # the policy's caps, or overrides
    doc = budget_report(open_budget_store("sqlite:///spend.db"), caps, users=["alice"])

The report (plain data, JSON-ready)::

    {"store": "sqlite:///spend.db", "total_spent_usd": 1.23, "open_reservations": 0,
     "unattributed_spent_usd": 0.01,                  # spend recorded without a user
     "global": [{"window": "day", "limit_usd": 10.0, "spent_usd": 0.5, "reserved_usd": 0.0,
                 "remaining_usd": 9.5}],             # one entry per global cap, its current window
     "users": [{"user": "alice", "spent_usd": 1.22,   # all-time spend of the user
                "caps": [{"window": ..., "limit_usd": ..., "spent_usd": ..., ...}]}]}

:func:`budget_tree` arranges a keys file's principals as org → team → user → key, each node with its
level's caps (``cascade budget --keys FILE``); :func:`tree_lines` renders it as indented text.

``spent_usd`` inside a cap entry is the spend of the cap's *current* window (today, this month...);
``remaining_usd`` = limit - spent - reserved, never below 0.

:func:`store_state` adds what is not in the ledger yet and whether the ledger itself is whole::

    "spool": {"path", "pending": 2, "pending_usd": 0.0004, "oldest_at": 1.7e9},   # None: no spool
    "ledger": {"state": "ok" | "lost" | "unreachable", "generation": "...", "detail": "...",
               "persistence": "aof" | "rdb" | "none" | "unknown"}                # Redis only
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from policies.budget import LEVELS, Cap, Principal, deployment_caps

__all__ = ["budget_caps", "budget_report", "budget_tree", "cap_rows", "store_state", "tree_lines"]


def budget_caps(policy: Any, *, global_cap_usd: float | None = None, user_cap_usd: float | None = None,
                cap_window: str = "total", **level_caps_usd: float | None) -> tuple[Cap, ...]:
    """The caps the Router would enforce (the same rule as ``Router(global_cap_usd=, ...)``);
    ``level_caps_usd``: ``team_cap_usd``, ``org_cap_usd``, ``key_cap_usd`` overrides."""
    return deployment_caps(policy.budgets, global_cap_usd=global_cap_usd, user_cap_usd=user_cap_usd,
                           cap_window=cap_window, **level_caps_usd)


def budget_report(store: Any, caps: Sequence[Cap], users: Iterable[str] | None = None, *,
                  now: float | None = None) -> dict[str, Any]:
    """Spend and remaining budget from ``store`` under ``caps`` (see the module docstring). ``users``:
    the users to show (default: every user with recorded spend)."""
    by_user = store.spend_by_user()
    global_caps = [c for c in caps if c.scope == "global"]
    user_caps = [c for c in caps if c.scope == "user"]
    names = sorted(u for u in by_user if u is not None) if users is None else list(dict.fromkeys(users))
    return {
        "store": getattr(store, "url", type(store).__name__),
        "total_spent_usd": store.total_spent(),
        "open_reservations": store.open_reservations(now),
        "unattributed_spent_usd": by_user.get(None, 0.0),
        "global": cap_rows(store, None, global_caps, now),
        "users": [{"user": name, "spent_usd": by_user.get(name, 0.0),
                   "caps": cap_rows(store, name, user_caps, now)} for name in names],
    }


def cap_rows(store: Any, user: Principal | str | None, caps: Sequence[Cap], now: float | None) -> list[dict[str, Any]]:
    """Each cap of ``caps`` for ``user`` (None: the global caps) in its current window: limit, spent,
    reserved, remaining (one snapshot of the store; no ledger scan)."""
    if not caps:
        return []
    snapshot = store.snapshot(user=user, caps=caps, now=now)
    return [{"window": u.cap.window, "limit_usd": u.cap.limit_usd, "spent_usd": u.spent_usd,
             "reserved_usd": u.reserved_usd, "remaining_usd": u.remaining_usd} for u in snapshot.usages]


def store_state(store: Any, spool: Any) -> dict[str, Any]:
    """The spool's summary (None without one) and, for a store that keeps a ledger generation (Redis),
    whether it still holds the ledger this host served and how Redis persists it."""
    from policies.errors import BudgetStoreUnavailable, LedgerLost

    doc: dict[str, Any] = {"spool": spool.summary() if spool is not None else None, "ledger": None}
    if not hasattr(store, "verify"):
        return doc
    ledger: dict[str, Any] = {"state": "ok", "generation": None, "detail": None}
    try:
        ledger["generation"] = store.verify()
    except LedgerLost as exc:
        ledger["state"], ledger["detail"] = "lost", str(exc)
    except BudgetStoreUnavailable as exc:
        ledger["state"], ledger["detail"] = "unreachable", str(exc)
    ledger["persistence"] = store.persistence()
    doc["ledger"] = ledger
    return doc


# ---- the org → team → user → key tree (``cascade budget --keys FILE``) ------------------------------

_NONE = "-"


def budget_tree(store: Any, caps: Sequence[Cap], principals: Iterable[Principal], *,
                now: float | None = None) -> dict[str, Any]:
    """The principals (a keys file's) as a tree, org → team → user → key, each node with its caps'
    current windows (spent / limit / reserved / remaining, as in :func:`budget_report`)::

        {"level": "global", "name": None, "caps": [...], "children": [
          {"level": "org", "name": "acme", "caps": [...], "children": [
            {"level": "team", "name": "ml", ...
              {"level": "user", "name": "bob", "spent_usd": 1.2, ... {"level": "key", "name": "bob-ci"}}}]}]}

    A level a key does not name is a node named None. ``spent_usd`` (all time) is given for users, whom the
    ledger records; a node of another level shows the spend of its capped windows only."""
    by_user = store.spend_by_user()
    root: dict[str, Any] = {"level": "global", "name": None, "caps": cap_rows(store, None, _of(caps, "global"), now),
                            "children": []}
    for principal in principals:
        node, path = root, {}
        for level in LEVELS:
            path[level] = principal.subject(level)
            node = _child(node, level, path, store, caps, now)
            if level == "user":
                node["spent_usd"] = by_user.get(principal.user, 0.0)
    return root


def _of(caps: Sequence[Cap], scope: str) -> list[Cap]:
    return [c for c in caps if c.scope == scope]


def _child(node: dict[str, Any], level: str, path: dict[str, str | None], store: Any, caps: Sequence[Cap],
           now: float | None) -> dict[str, Any]:
    name = path[level]
    for child in node["children"]:
        if child["name"] == name:
            return child
    who = Principal(**{lvl: path.get(lvl) for lvl in LEVELS})
    child = {"level": level, "name": name, "caps": cap_rows(store, who, _of(caps, level), now) if name else [],
             "children": []}
    node["children"].append(child)
    return child


def usd(amount: float) -> str:
    from cascade.budget.base import usd as fmt
    return fmt(amount)


def tree_lines(tree: dict[str, Any]) -> list[str]:
    """The tree as indented text, one line per node and cap window: ``team ml  day: $4.98 spent /
    $5.00 cap, $0.02 left``."""
    lines: list[str] = []
    _walk(tree, 0, lines)
    return lines


def _walk(node: dict[str, Any], depth: int, lines: list[str]) -> None:
    label = "global" if node["level"] == "global" else f"{node['level']} {node['name'] or _NONE}"
    if "spent_usd" in node:
        label += f" ({usd(node['spent_usd'])} spent in all)"
    cells = [f"{r['window']}: {usd(r['spent_usd'])} spent / {usd(r['limit_usd'])} cap, {usd(r['remaining_usd'])} "
             "left" + (f" ({usd(r['reserved_usd'])} reserved)" if r["reserved_usd"] else "") for r in node["caps"]]
    lines.append("  " * depth + label + ("  " + "; ".join(cells) if cells else "  no cap"))
    for child in node["children"]:
        _walk(child, depth + 1, lines)
