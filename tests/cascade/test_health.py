"""Circuit breakers: local state machine, and state shared between replicas through a real Redis."""
from __future__ import annotations

import pytest

from cascade.health import HealthBoard
from cascade.health_shared import SharedHealthBoard
from policies.schema import CircuitConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_consecutive_failures_then_half_open_probe_closes():
    clock = Clock()
    board = HealthBoard(CircuitConfig(failures=3, cooldown_s=10), clock=clock)
    for _ in range(2):
        board.failure("m")
    assert board.state("m") == "closed" and board.acquire("m")
    board.failure("m")
    assert board.state("m") == "open" and not board.acquire("m")
    assert "m" in board.snapshot().down
    clock.t += 10.5
    assert board.state("m") == "half_open"
    assert board.acquire("m")            # the one probe
    assert not board.acquire("m")        # nobody else while it runs
    board.success("m")
    assert board.state("m") == "closed" and board.acquire("m")


def test_failed_probe_reopens_and_success_resets_the_count():
    clock = Clock()
    board = HealthBoard(CircuitConfig(failures=2, cooldown_s=5), clock=clock)
    board.failure("m")
    board.success("m")
    board.failure("m")
    assert board.state("m") == "closed"          # not consecutive
    board.failure("m")
    clock.t += 6
    assert board.acquire("m")
    board.failure("m")
    assert board.state("m") == "open"
    clock.t += 6
    assert board.acquire("m")
    board.release_probe("m")                     # cancelled probe: another may try
    assert board.acquire("m")


@pytest.mark.redis
def test_one_replica_opening_a_circuit_protects_the_others(redis_server):
    config = CircuitConfig(failures=2, cooldown_s=30)
    prefix = "test-health-share:"
    a = SharedHealthBoard(HealthBoard(config), redis_server.url, prefix=prefix, refresh_s=0.0)
    b = SharedHealthBoard(HealthBoard(config), redis_server.url, prefix=prefix, refresh_s=0.0)
    assert b.acquire("deepseek-v2")
    a.failure("deepseek-v2")
    a.failure("deepseek-v2")
    assert a.state("deepseek-v2") == "open"
    assert b.state("deepseek-v2") == "open" and not b.acquire("deepseek-v2")
    assert "deepseek-v2" in b.snapshot().down
    a.success("deepseek-v2")
    assert b.state("deepseek-v2") == "closed" and b.acquire("deepseek-v2")


def test_shared_board_degrades_to_local_when_redis_is_down():
    board = SharedHealthBoard(HealthBoard(CircuitConfig(failures=1)), "redis://127.0.0.1:1/0", refresh_s=0.0)
    assert board.acquire("m")
    board.failure("m")                           # cannot share: still opens locally
    assert board.state("m") == "open"
