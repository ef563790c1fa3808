"""pytest fixtures for the fake provider. Register with ``pytest_plugins = ["tests.harness.plugin"]``.

    fake_provider_server      session: one FakeProvider in a background thread
    fake_provider             function: that server, reset (scripts + tally) before and after the test
    spawn_fake_provider       function: factory starting FakeProviderProcess subprocesses, stopped after
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import pytest

from tests.harness.fake_provider import FakeProvider, FakeProviderProcess


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    server = FakeProvider().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    fake_provider_server.reset()
    try:
        yield fake_provider_server
    finally:
        fake_provider_server.reset()


@pytest.fixture
def spawn_fake_provider() -> Iterator[Callable[..., FakeProviderProcess]]:
    started: list[FakeProviderProcess] = []

    def spawn(script: Mapping[str, Any] | str | None = None, **kw: Any) -> FakeProviderProcess:
        proc = FakeProviderProcess(script, **kw).start()
        started.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in started:
            proc.stop()
