"""Fixtures for the budget-store conformance suite: a real redis-server and one `store` per backend."""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cascade.budget import BudgetStore, MemoryBudgetStore
from tests.harness.redis_server import REDIS_PASSWORD, RedisServer  # noqa: F401 - fixtures come from the plugin


StoreFactory = Callable[[], BudgetStore]


REDIS = pytest.param("redis", marks=pytest.mark.redis)


@pytest.fixture(params=["memory", "sqlite", REDIS])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens (another handle on) one fresh budget; every handle it made is closed afterwards."""
    yield from _factory(request, tmp_path)


@pytest.fixture(params=["sqlite", REDIS])
def shared_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """As `store_factory`, for the stores that several processes can share."""
    yield from _factory(request, tmp_path)


def _factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    kind = request.param
    made: list[BudgetStore] = []
    location, prefix = "", ""
    if kind == "memory":
        shared = MemoryBudgetStore()

        def open_store() -> BudgetStore:
            return shared
    elif kind == "sqlite":
        from cascade.budget.sqlite import SQLiteBudgetStore

        path = tmp_path / "budget" / "ledger.db"
        location = str(path)

        def open_store() -> BudgetStore:
            made.append(SQLiteBudgetStore(path))
            return made[-1]
    else:
        from cascade.budget.redis_store import RedisBudgetStore

        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"t{uuid.uuid4().hex[:12]}:"
        location = server.url

        def open_store() -> BudgetStore:
            made.append(RedisBudgetStore(server.url, prefix=prefix))
            return made[-1]
    # what another process needs to open the same budget
    open_store.kind, open_store.location, open_store.prefix = kind, location, prefix  # type: ignore[attr-defined]
    yield open_store
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> BudgetStore:
    return store_factory()
