"""Redis-specific behaviour: key layout and expiry, script reloading, unavailability without secrets."""
from __future__ import annotations

import socket
import time
import uuid

import pytest
import redis

from cascade.budget.redis_store import DONE_TTL_S, HOLD_GRACE_S, SPEND_GRACE_S, RedisBudgetStore
from policies.budget import Cap, window_bucket
from policies.errors import BudgetStoreUnavailable

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_server):
    conn = redis.Redis(port=redis_server.port, decode_responses=True)
    yield conn
    conn.close()


@pytest.fixture
def store(redis_server):
    store = RedisBudgetStore(redis_server.url, prefix=f"k{uuid.uuid4().hex[:10]}:")
    yield store
    store.close()


def test_keys_expire_after_their_window_and_holds_after_their_ttl(store, client):
    p, now = store.prefix, time.time()
    caps = [Cap("global", "day", 5.0), Cap("global", "total", 9.0), Cap("user", "minute", 1.0)]
    res = store.reserve(request_id="r", user="ann", model="m", amount_usd=0.5, caps=caps, ttl_s=60)
    assert HOLD_GRACE_S + 55 <= client.ttl(f"{p}r:{res.id}") <= HOLD_GRACE_S + 60
    assert client.zscore(f"{p}reservations", res.id) == pytest.approx(res.expires_at)
    store.commit(res, 0.4)
    label, day_end = window_bucket("day", now)
    day_ttl = client.ttl(f"{p}spend:global:day:{label}")
    assert day_end - now + SPEND_GRACE_S - 5 <= day_ttl <= day_end - now + SPEND_GRACE_S + 1
    assert client.ttl(f"{p}spend:global:total:total") == -1
    assert client.ttl(f"{p}total") == -1 and client.get(f"{p}total") == "400000000"
    assert DONE_TTL_S - 5 <= client.ttl(f"{p}done:{res.id}") <= DONE_TTL_S
    assert not client.exists(f"{p}r:{res.id}") and client.zcard(f"{p}reservations") == 0
    assert client.xlen(f"{p}ledger") == 1 and client.hgetall(f"{p}by_user") == {"u:ann": "400000000"}


def test_a_short_hold_does_not_shorten_a_bucket_set_by_a_longer_one(store, client):
    cap = Cap("global", "minute", 5.0)
    long = store.reserve(request_id="a", user=None, model="m", amount_usd=1, caps=[cap], ttl_s=600)
    store.reserve(request_id="b", user=None, model="m", amount_usd=1, caps=[cap], ttl_s=1)
    (bucket, _), = long.buckets
    assert client.ttl(f"{store.prefix}rz:{bucket}") >= 600


def test_scripts_are_reloaded_after_a_script_flush(store, client):
    store.commit(store.reserve(request_id="r", user=None, model="m", amount_usd=0.1, caps=[]), 0.1)
    client.script_flush()
    store.commit(store.reserve(request_id="r", user=None, model="m", amount_usd=0.1, caps=[]), 0.1)
    assert store.total_spent() == pytest.approx(0.2)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_unavailable_without_the_password():
    store = RedisBudgetStore(f"redis://:hunter2@127.0.0.1:{_closed_port()}/0", socket_timeout_s=0.5)
    for call in (lambda: store.reserve(request_id="r", user=None, model="m", amount_usd=0.1, caps=[]),
                 lambda: store.total_spent(), lambda: store.ledger()):
        with pytest.raises(BudgetStoreUnavailable) as info:
            call()
        assert "hunter2" not in str(info.value) and "***" in str(info.value)
    assert "hunter2" not in repr(store)
    store.close()


def test_a_password_protected_server(redis_server_with_password):
    server = redis_server_with_password
    port, password = server.port, server.password
    good = RedisBudgetStore(server.url, prefix="pw:")
    good.commit(good.reserve(request_id="r", user=None, model="m", amount_usd=0.1, caps=[]), 0.1)
    assert good.total_spent() == 0.1
    assert password and password not in good.url and password not in repr(good)
    good.close()
    bad = RedisBudgetStore(f"redis://:hunter2@127.0.0.1:{port}/0")
    with pytest.raises(BudgetStoreUnavailable) as info:
        bad.total_spent()
    assert "hunter2" not in str(info.value) and "***" in str(info.value)
    bad.close()
