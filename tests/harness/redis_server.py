"""A private, real redis-server for the tests (no persistence), started on a free port.

Fixtures: ``redis_server`` (session) and ``redis_server_with_password``. Without the binary the tests
are skipped, or fail when the environment variable CI is set (CI installs it from Debian's packages).
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
    """A private redis-server (no persistence) for the whole session."""
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


@contextmanager
def private_redis_server(workdir: Path, *extra: str) -> Iterator[RedisServer]:
    """A redis-server subprocess (no persistence) on a free port of 127.0.0.1, stopped on exit. Also
    used outside pytest (benchmarks/soak.py)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server binary not found (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        password = REDIS_PASSWORD if "--requirepass" in extra else None
        _wait_for_ping(port, proc, password=password)
        yield RedisServer(port, password)
    finally:
        stop_process(proc, timeout_s=5)
