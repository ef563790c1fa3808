"""A private, real redis-server for the tests, started on a free port, persisting as production should:
append-only file on (``appendonly yes``, ``appendfsync everysec``: README's recommended setting). The
tests that kill redis-server and restart it use ``appendfsync always`` ("aof-always"), so that it comes
back with every acknowledged write, and "none" to show what a Redis without persistence loses.

Fixtures: ``redis_server`` (session) and ``redis_server_with_password``; :class:`RedisProcess` for the
tests that stop and restart one (with or without persistence). Without the binary the tests are
skipped, or fail when the environment variable CI is set (CI installs it from Debian's packages).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.harness.processes import stop_process


@dataclass(frozen=True)
class RedisServer:
    port: int
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_ping(port: int, proc: subprocess.Popen, *, password: str | None,
                   deadline_s: float = 10.0) -> None:
    import redis

    client = redis.Redis(port=port, password=password, socket_connect_timeout=0.2, socket_timeout=0.5)
    deadline = time.monotonic() + deadline_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 10 s")
    finally:
        client.close()


REDIS_PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server (append-only file, fsynced every second) for the whole session."""
    yield from _run_redis_server(tmp_path_factory)


@pytest.fixture(scope="session")
def redis_server_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Another one that requires ``REDIS_PASSWORD``."""
    yield from _run_redis_server(tmp_path_factory, "--requirepass", REDIS_PASSWORD)


def _run_redis_server(tmp_path_factory: pytest.TempPathFactory, *extra: str) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server binary not found (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with private_redis_server(tmp_path_factory.mktemp("redis"), *extra) as server:
        yield server


PERSISTENCE = {"aof": ("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
               "aof-always": ("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
               "none": ("--appendonly", "no", "--save", "")}


class RedisProcess:
    """A redis-server subprocess on a fixed port and directory that a test can kill and restart."""

    def __init__(self, workdir: Path, *extra: str, persistence: str = "aof", port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server binary not found (apt-get install redis-server)")
        self.binary, self.workdir, self.extra = binary, workdir, extra
        self.persistence = PERSISTENCE[persistence]
        self.port = port or _free_port()
        self.password = REDIS_PASSWORD if "--requirepass" in extra else None
        self.proc: subprocess.Popen | None = None

    @property
    def server(self) -> RedisServer:
        return RedisServer(self.port, self.password)

    def start(self) -> "RedisProcess":
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", *self.persistence,
             "--dir", str(self.workdir), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_ping(self.port, self.proc, password=self.password)
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to write anything more (what a crash or an OOM kill does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=5)


@contextmanager
def private_redis_server(workdir: Path, *extra: str, persistence: str = "aof") -> Iterator[RedisServer]:
    """A redis-server subprocess on a free port of 127.0.0.1 (persistence: "aof", "aof-always" or
    "none"), stopped on exit. Also used outside pytest (benchmarks/soak.py)."""
    process = RedisProcess(workdir, *extra, persistence=persistence)
    try:
        yield process.start().server
    finally:
        process.stop()
