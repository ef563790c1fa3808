"""Key-value stores with expiry, for cached answers, their vectors and session pins.

    open_cache_store("memory://", max_entries=10_000)    MemoryCacheStore  (bounded: LRU, then TTL)
    open_cache_store("sqlite:///cache.db")                SQLiteCacheStore  (one file, safe across processes)
    open_cache_store("redis://host:6379/0")               RedisCacheStore   (expiry kept by Redis)

Every store: ``get(key)``, ``put(key, value, ttl_s)``, ``add_vector(bucket, key, vector, ttl_s)`` and
``vectors(bucket)`` (the live (key, vector) pairs of a semantic bucket), ``close()``. Values are text
(JSON). Calls block (a file or a socket): :class:`cascade.cache.layer.ResponseCache` runs the
non-memory ones in a worker thread.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Protocol

from policies.errors import ConfigError

Vector = list[float]


class CacheStore(Protocol):
    blocking: bool

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str, ttl_s: float) -> None: ...

    def add_vector(self, bucket: str, key: str, vector: Vector, ttl_s: float) -> None: ...

    def vectors(self, bucket: str) -> list[tuple[str, Vector]]: ...

    def close(self) -> None: ...


class MemoryCacheStore:
    """Process-local, bounded: at most ``max_entries`` values and as many vectors (least recently used
    dropped first); expired entries are never returned."""

    blocking = False

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self._clock = max_entries, clock
        self._values: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._vectors: OrderedDict[tuple[str, str], tuple[float, Vector]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            got = self._values.get(key)
            if got is None:
                return None
            if got[0] <= self._clock():
                del self._values[key]
                return None
            self._values.move_to_end(key)
            return got[1]

    def put(self, key: str, value: str, ttl_s: float) -> None:
        with self._lock:
            self._values[key] = (self._clock() + ttl_s, value)
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)

    def add_vector(self, bucket: str, key: str, vector: Vector, ttl_s: float) -> None:
        with self._lock:
            self._vectors[(bucket, key)] = (self._clock() + ttl_s, list(vector))
            self._vectors.move_to_end((bucket, key))
            while len(self._vectors) > self.max_entries:
                self._vectors.popitem(last=False)

    def vectors(self, bucket: str) -> list[tuple[str, Vector]]:
        now = self._clock()
        with self._lock:
            return [(k, v) for (b, k), (exp, v) in self._vectors.items() if b == bucket and exp > now]

    def __len__(self) -> int:
        return len(self._values)

    def close(self) -> None:
        return None


class SQLiteCacheStore:
    """One SQLite file (WAL, busy timeout): several processes can share it. Expired rows are never
    returned and are deleted as new ones are written."""

    blocking = True
    _SCHEMA = ("CREATE TABLE IF NOT EXISTS cache_values (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
               "expires REAL NOT NULL)",
               "CREATE TABLE IF NOT EXISTS cache_vectors (bucket TEXT NOT NULL, key TEXT NOT NULL, "
               "vector TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (bucket, key))")

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        import sqlite3
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        for statement in self._SCHEMA:
            self._db.execute(statement)

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cache_values WHERE key=? AND expires>?",
                                   (key, self._clock())).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: str, ttl_s: float) -> None:
        now = self._clock()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cache_values (key, value, expires) VALUES (?,?,?)",
                             (key, value, now + ttl_s))
            self._db.execute("DELETE FROM cache_values WHERE expires<=?", (now,))

    def add_vector(self, bucket: str, key: str, vector: Vector, ttl_s: float) -> None:
        now = self._clock()
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cache_vectors (bucket, key, vector, expires) VALUES (?,?,?,?)",
                             (bucket, key, json.dumps(vector), now + ttl_s))
            self._db.execute("DELETE FROM cache_vectors WHERE expires<=?", (now,))

    def vectors(self, bucket: str) -> list[tuple[str, Vector]]:
        with self._lock:
            rows = self._db.execute("SELECT key, vector FROM cache_vectors WHERE bucket=? AND expires>?",
                                    (bucket, self._clock())).fetchall()
        return [(k, json.loads(v)) for k, v in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisCacheStore:
    """Values and vectors as Redis keys with an expiry (Redis drops them); a semantic bucket is a set
    of its entries' keys, whose members are pruned when their vector has expired."""

    blocking = True

    def __init__(self, url: str, prefix: str = "cascade:cache:") -> None:
        import redis
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.prefix = prefix

    def get(self, key: str) -> str | None:
        got = self._redis.get(self.prefix + "v:" + key)
        return got.decode("utf-8") if got is not None else None

    def put(self, key: str, value: str, ttl_s: float) -> None:
        self._redis.set(self.prefix + "v:" + key, value.encode("utf-8"), px=max(1, int(ttl_s * 1000)))

    def add_vector(self, bucket: str, key: str, vector: Vector, ttl_s: float) -> None:
        ms = max(1, int(ttl_s * 1000))
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(f"{self.prefix}e:{bucket}:{key}", json.dumps(vector), px=ms)
        pipe.sadd(f"{self.prefix}b:{bucket}", key)
        pipe.pexpire(f"{self.prefix}b:{bucket}", ms)
        pipe.execute()

    def vectors(self, bucket: str) -> list[tuple[str, Vector]]:
        keys = sorted(k.decode("utf-8") for k in self._redis.smembers(f"{self.prefix}b:{bucket}"))
        if not keys:
            return []
        got = self._redis.mget([f"{self.prefix}e:{bucket}:{k}" for k in keys])
        gone = [k for k, v in zip(keys, got) if v is None]
        if gone:
            self._redis.srem(f"{self.prefix}b:{bucket}", *gone)
        return [(k, json.loads(v)) for k, v in zip(keys, got) if v is not None]

    def close(self) -> None:
        self._redis.close()


def open_cache_store(url: str, *, max_entries: int = 10_000, prefix: str = "cascade:cache:") -> CacheStore:
    """The store a policy's ``store`` URL names (validated by the schema; ConfigError otherwise)."""
    if url == "memory://":
        return MemoryCacheStore(max_entries)
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SQLiteCacheStore(url[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://")):
        return RedisCacheStore(url, prefix)
    raise ConfigError(f"unknown cache store URL {url.split('@')[-1]!r}: expected memory://, sqlite:///PATH "
                      "or redis://HOST:PORT/DB")
