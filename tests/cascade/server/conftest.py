"""Fixtures for the server tests: an in-process ``cascade serve`` (uvicorn in a thread, Router wired to
the fake provider), ``cascade serve`` subprocesses, and a private redis-server."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from cascade.router import Router
from policies.errors import BudgetStoreUnavailable
from cascade.server.app import create_app
from tests.cascade.router.conftest import KEYS, FixedScore, provider_env
from tests.harness.processes import stop_process

ROOT = Path(__file__).resolve().parents[3]
ALICE_KEY, BOB_KEY = "sk-cascade-alice-0123456789", "sk-cascade-bob-9876543210"
API_KEYS = {ALICE_KEY: "alice", BOB_KEY: "bob"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_msg(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# ---- in-process server ---------------------------------------------------------------------------------

@dataclass
class Served:
    url: str            # http://127.0.0.1:PORT
    app: Any
    server: Any

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def router(self) -> Router:
        return self.app.state.cascade.router


def _run_in_thread(app: Any) -> Served:
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="cascade-serve-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process cascade server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    server._test_thread = thread  # type: ignore[attr-defined]
    return Served(f"http://127.0.0.1:{port}", app, server)


@pytest.fixture
def serve(fake_provider: Any) -> Iterator[Callable[..., Served]]:
    """``serve(score=0.1, keys=None, max_body_bytes=None, sse_keepalive_s=None, **router_kw)``: an app on a
    free port whose Router
    calls the fake provider; stopped (and its ledger checked for open reservations) after the test."""
    started: list[Served] = []

    def start(*, score: float = 0.1, keys: Any = None, max_body_bytes: int | None = None,
              policy: Any = "default", sse_keepalive_s: float | None = None, **router_kw: Any) -> Served:
        router_kw.setdefault("budget_store", "memory://")

        def factory() -> Router:
            return Router(policy, classifier=FixedScore(score), env=provider_env(fake_provider.url), seed=0,
                          **router_kw)
        served = _run_in_thread(create_app(factory, keys=keys, max_body_bytes=max_body_bytes,
                                           sse_keepalive_s=sse_keepalive_s))
        started.append(served)
        return served

    yield start
    for served in started:
        try:
            assert served.router.store.open_reservations() == 0
        except BudgetStoreUnavailable:          # a test of a dead store
            pass
        served.server.should_exit = True
        served.server._test_thread.join(10)


# ---- subprocess servers ----------------------------------------------------------------------------------

def subprocess_env(provider_url: str) -> dict[str, str]:
    env = dict(os.environ, **provider_env(provider_url), LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@dataclass
class ServeProcess:
    proc: subprocess.Popen
    url: str
    log: Path

    def wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cascade serve exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cascade serve did not become healthy: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def spawn_serve(tmp_path: Path) -> Iterator[Callable[..., list[ServeProcess]]]:
    """``spawn_serve(provider_url, [args...], [args...])``: start one ``python -m cascade.server serve``
    per argument list (in parallel), wait until every one answers /healthz; stopped after the test."""
    started: list[ServeProcess] = []

    def spawn(provider_url: str, *arg_lists: list[str]) -> list[ServeProcess]:
        batch = []
        for args in arg_lists:
            port = free_port()
            log = tmp_path / f"serve-{port}.log"
            with open(log, "w") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "cascade.server", "serve", "--port", str(port),
                                         "--log-level", "warning", *args],
                                        cwd=ROOT, env=subprocess_env(provider_url), stdout=fh, stderr=fh)
            batch.append(ServeProcess(proc, f"http://127.0.0.1:{port}", log))
        started.extend(batch)
        deadline = time.monotonic() + 90
        for served in batch:
            served.wait_healthy(deadline)
        return batch

    yield spawn
    for served in started:
        served.stop()


# ---- redis ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    """The session's private redis-server (tests/harness/redis_server.py); its URL with db 0."""
    return redis_server.url


__all__ = ["ALICE_KEY", "API_KEYS", "BOB_KEY", "KEYS", "Served", "free_port", "subprocess_env", "user_msg"]
