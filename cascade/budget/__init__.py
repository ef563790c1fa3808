"""Budget stores: where the Router reserves, commits and counts money.

    open_budget_store("memory://")                    -> MemoryBudgetStore   (process-local)
    open_budget_store("memory://?history=1000")       -> ... keeping the last 1,000 ledger entries
    open_budget_store("sqlite:///budget.db")          -> SQLiteBudgetStore   (relative to the cwd)
    open_budget_store("sqlite:////var/lib/x/b.db")    -> SQLiteBudgetStore   (absolute; ~ expands)
    open_budget_store("redis://host:6379/0")          -> RedisBudgetStore    (also rediss://)

``BUDGET_STORES`` is the explicit registry (URL scheme → factory); nothing registers itself on import.
Importing this package imports neither sqlite3 nor redis; the stores load on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from cascade.budget.base import (BudgetStore, BudgetStoreBase, LedgerEntry, Reservation,
                                 ReservationNotFound, mask_url)
from cascade.budget.memory import MemoryBudgetStore
from policies.errors import ConfigError

if TYPE_CHECKING:
    from cascade.budget.redis_store import RedisBudgetStore
    from cascade.budget.sqlite import SQLiteBudgetStore

__all__ = ["BUDGET_STORES", "BudgetStore", "BudgetStoreBase", "LedgerEntry", "MemoryBudgetStore",
           "RedisBudgetStore", "Reservation", "ReservationNotFound", "SQLiteBudgetStore",
           "mask_url", "open_budget_store"]


def _open_memory(url: str) -> BudgetStore:
    rest = url.partition("://")[2]
    if not rest:
        return MemoryBudgetStore()
    key, sep, value = rest.partition("=")
    if key != "?history" or not sep or not value.isdigit() or int(value) < 1:
        raise ConfigError(f"malformed budget store URL {mask_url(url)!r}: memory:// takes no path, "
                          "only ?history=N (N >= 1 recent ledger entries kept)")
    return MemoryBudgetStore(history=int(value))


def _open_sqlite(url: str) -> BudgetStore:
    from cascade.budget.sqlite import SQLiteBudgetStore

    head, path = url[:len("sqlite:///")], url[len("sqlite:///"):]
    if head.lower() != "sqlite:///" or not path or path.startswith("/" * 2) or "?" in path:
        raise ConfigError(f"malformed budget store URL {mask_url(url)!r}: expected "
                          "sqlite:///relative.db, sqlite:////abs/path.db or sqlite:///~/x.db")
    return SQLiteBudgetStore(path)


def _open_redis(url: str) -> BudgetStore:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"malformed budget store URL {mask_url(url)!r}: {exc}") from None
    db = parts.path.lstrip("/")
    if not parts.hostname or (db and not db.isdigit()):
        raise ConfigError(f"malformed budget store URL {mask_url(url)!r}: expected "
                          "redis://[:password@]host[:port][/db] with an integer db")
    from cascade.budget.generation import GenerationMarker
    from cascade.budget.redis_store import RedisBudgetStore
    from cascade.spool import spool_path

    store = RedisBudgetStore(url)
    path = spool_path(store)
    store.marker = GenerationMarker(path.with_suffix(".generation")) if path is not None else None
    return store


BUDGET_STORES: dict[str, Callable[[str], BudgetStore]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
}


def open_budget_store(url: str) -> BudgetStore:
    """The budget store named by ``url``; ConfigError (password masked) if it is not understood."""
    scheme, sep, _ = str(url).partition("://")
    factory = BUDGET_STORES.get(scheme.lower()) if sep else None
    if factory is None:
        raise ConfigError(f"unknown budget store URL {mask_url(str(url))!r}; expected one of "
                          + ", ".join(f"{s}://" for s in BUDGET_STORES))
    return factory(str(url))


def __getattr__(name: str) -> Any:
    if name == "SQLiteBudgetStore":
        from cascade.budget.sqlite import SQLiteBudgetStore

        return SQLiteBudgetStore
    if name == "RedisBudgetStore":
        from cascade.budget.redis_store import RedisBudgetStore

        return RedisBudgetStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
