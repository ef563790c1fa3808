"""/healthz and chat completions of an in-process server whose Redis ledger was lost (restarted without
persistence): 503, with what happened and how to resume."""
from __future__ import annotations

import httpx
import pytest

from cascade.budget import open_budget_store
from tests.harness.fake_provider import answer
from tests.harness.redis_server import RedisProcess

from .conftest import user_msg

pytestmark = pytest.mark.redis


def test_a_lost_redis_ledger_makes_healthz_and_requests_503(serve, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris."))
    (tmp_path / "redis").mkdir()
    redis = RedisProcess(tmp_path / "redis", persistence="none").start()
    try:
        served = serve(budget_store=open_budget_store(redis.server.url), global_cap_usd=1.0)
        body = {"model": "cascade", "messages": user_msg("Capital of France?")}
        assert httpx.post(served.base_url + "/chat/completions", json=body, timeout=60).status_code == 200
        redis.kill()
        redis.start()                                    # empty: the ledger is gone
        health = httpx.get(served.url + "/healthz", timeout=30)
        doc = health.json()
        assert health.status_code == 503 and doc["status"] == "degraded"
        assert doc["store"]["error"] == "LedgerLost" and "--confirm-new-ledger" in doc["store"]["detail"]
        refused = httpx.post(served.base_url + "/chat/completions", json=body, timeout=60)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "budget_store_unavailable"
        served.router.store.confirm_new_ledger()
        assert httpx.get(served.url + "/healthz", timeout=30).status_code == 200
        assert httpx.post(served.base_url + "/chat/completions", json=body, timeout=60).status_code == 200
    finally:
        redis.stop()
