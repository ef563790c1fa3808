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
    assert not board.acquire("m")                # a failed probe doubles the cooldown: 10 s this time
    clock.t += 4.5
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


def test_failed_probes_lengthen_the_cooldown_and_a_success_resets_it():
    clock = Clock()
    board = HealthBoard(CircuitConfig(failures=1, cooldown_s=2, cooldown_multiplier=2, max_cooldown_s=7), clock=clock)
    waits = []
    board.failure("m")
    for _ in range(4):
        waits.append(board.retry_in("m"))
        clock.t += waits[-1]
        assert board.state("m") == "half_open" and board.acquire("m")
        board.failure("m")                       # the probe fails: open again, for longer
    assert waits == [2, 4, 7, 7]                 # 2, 4, then capped at max_cooldown_s
    clock.t += 7
    assert board.acquire("m")
    board.success("m")
    assert board.state("m") == "closed" and board.retry_in("m") is None
    board.failure("m")
    assert board.retry_in("m") == 2              # the next opening starts short again


def test_failures_of_calls_already_in_flight_do_not_lengthen_an_open_circuit():
    clock = Clock()
    board = HealthBoard(CircuitConfig(failures=2, cooldown_s=2), clock=clock)
    for _ in range(10):                          # 10 concurrent calls failing together
        board.failure("m")
    assert board.retry_in("m") == 2


def test_transitions_are_reported_to_listeners():
    clock = Clock()
    board = HealthBoard(CircuitConfig(failures=2, cooldown_s=1), clock=clock)
    seen = []
    board.subscribe(lambda model, was, now: seen.append((model, was, now)))
    board.subscribe(lambda *_: 1 / 0)           # a failing listener breaks nothing
    board.failure("m")
    board.failure("m")
    clock.t += 1
    board.acquire("m")
    board.failure("m")
    clock.t += 2
    board.acquire("m")
    board.success("m")
    assert seen == [("m", "closed", "open"), ("m", "open", "half_open"), ("m", "half_open", "open"),
                    ("m", "open", "half_open"), ("m", "half_open", "closed")]


def test_cooldown_longer_than_the_maximum_is_kept():
    assert CircuitConfig(cooldown_s=120).cooldown(1) == 120 and CircuitConfig(cooldown_s=120).cooldown(5) == 120
    assert CircuitConfig().cooldown(1) == 2.0 and CircuitConfig().cooldown(100) == 60.0


@pytest.mark.redis
def test_shared_board_shares_this_openings_cooldown(redis_server):
    config = CircuitConfig(failures=1, cooldown_s=3, max_cooldown_s=60)
    prefix = "test-health-backoff:"
    a = SharedHealthBoard(HealthBoard(config), redis_server.url, prefix=prefix, refresh_s=0.0)
    b = SharedHealthBoard(HealthBoard(config), redis_server.url, prefix=prefix, refresh_s=0.0)
    a.failure("m")
    assert b.state("m") == "open" and 2.0 < b.retry_in("m") <= 3.0
    a.success("m")
