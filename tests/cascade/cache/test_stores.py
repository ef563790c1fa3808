"""Cache stores: the same contract on memory, a SQLite file (two connections, as two processes
would have) and a real redis-server; the memory store's LRU bound and TTL; cache keys."""
from __future__ import annotations

import multiprocessing
import time

import pytest

from cascade.cache.keys import cache_keys, request_digest
from cascade.cache.stores import MemoryCacheStore, SQLiteCacheStore, open_cache_store
from policies.errors import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_and_clock(request, tmp_path):
    clock = Clock()
    if request.param == "memory":
        yield MemoryCacheStore(100, clock=clock), clock
    elif request.param == "sqlite":
        s = SQLiteCacheStore(tmp_path / "c.db", clock=clock)
        yield s, clock
        s.close()
    else:
        import redis
        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        s = open_cache_store(server.url)
        yield s, None
        s.close()


def test_the_store_contract(store_and_clock):
    store, _ = store_and_clock
    assert store.get("k") is None and store.vectors("b") == []
    store.put("k", '{"a": "é"}', 60)
    assert store.get("k") == '{"a": "é"}'
    store.put("k", "v2", 60)
    assert store.get("k") == "v2"
    store.add_vector("b", "k", [0.5, -0.25], 60)
    store.add_vector("b", "k2", [1.0, 0.0], 60)
    store.add_vector("other", "k3", [0.0, 1.0], 60)
    assert sorted(store.vectors("b")) == [("k", [0.5, -0.25]), ("k2", [1.0, 0.0])]


def test_entries_expire(store_and_clock):
    store, clock = store_and_clock
    if clock is None:
        store.put("k", "v", 0.05)
        store.add_vector("b", "k", [1.0], 0.05)
        time.sleep(0.2)           # Redis keeps the expiry itself
    else:
        store.put("k", "v", 10)
        store.add_vector("b", "k", [1.0], 10)
        clock.now += 10
    assert store.get("k") is None and store.vectors("b") == []


def test_memory_store_is_bounded_least_recently_used_first():
    store = MemoryCacheStore(2)
    store.put("a", "1", 60)
    store.put("b", "2", 60)
    store.get("a")
    store.put("c", "3", 60)
    assert (store.get("a"), store.get("b"), store.get("c")) == ("1", None, "3") and len(store) == 2


def _write(path: str, n: int) -> None:
    s = SQLiteCacheStore(path)
    for i in range(n):
        s.put(f"k{i}", f"v{i}", 60)
    s.close()


def test_sqlite_store_is_safe_across_processes(tmp_path):
    path = str(tmp_path / "shared.db")
    procs = [multiprocessing.get_context("spawn").Process(target=_write, args=(path, 50)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    reader = SQLiteCacheStore(path)
    assert all(reader.get(f"k{i}") == f"v{i}" for i in range(50))
    reader.close()


def test_unknown_store_urls_are_config_errors():
    with pytest.raises(ConfigError, match="unknown cache store URL"):
        open_cache_store("postgres://u:secret@h/db")


def test_keys_cover_the_request_scope_and_policy():
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Capital?"}]
    base = cache_keys("p", "sha", "user", "alice", msgs, {"temperature": 0})
    assert base == cache_keys("p", "sha", "user", "alice", msgs, {"temperature": 0, "stream": True})
    assert base.query == "Capital?"
    for other in (cache_keys("p", "sha2", "user", "alice", msgs, {"temperature": 0}),
                  cache_keys("q", "sha", "user", "alice", msgs, {"temperature": 0}),
                  cache_keys("p", "sha", "user", "bob", msgs, {"temperature": 0}),
                  cache_keys("p", "sha", "user", "alice", msgs, {"temperature": 0, "seed": 1})):
        assert other.exact != base.exact and other.bucket != base.bucket
    assert cache_keys("p", "sha", "global", "bob", msgs, {}).exact == cache_keys("p", "sha", "global", "alice", msgs, {}).exact
    reworded = [msgs[0], {"role": "user", "content": "capital??"}]
    assert cache_keys("p", "sha", "user", "alice", reworded, {"temperature": 0}).bucket == base.bucket
    other_system = [{"role": "system", "content": "be verbose"}, msgs[1]]
    assert cache_keys("p", "sha", "user", "alice", other_system, {"temperature": 0}).bucket != base.bucket
    assert request_digest(msgs, {"temperature": 0, "user": "x"}) == request_digest(msgs, {"temperature": 0})
