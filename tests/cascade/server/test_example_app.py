"""``examples/fastapi_app.py`` (a user's own FastAPI app with a Router inside) against the fake provider."""
from __future__ import annotations

import importlib.util

import pytest
from fastapi.testclient import TestClient

from tests.harness.fake_provider import answer

from .conftest import ROOT
from tests.cascade.router.conftest import provider_env


@pytest.fixture
def example_app(fake_provider, monkeypatch):
    for name, value in provider_env(fake_provider.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CASCADE_BUDGET_STORE", "memory://")
    monkeypatch.setenv("CASCADE_USER_CAP_USD", "0.0002")
    spec = importlib.util.spec_from_file_location("fastapi_app_example", ROOT / "examples" / "fastapi_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def test_example_app_answers_with_the_trace_and_enforces_the_user_cap(example_app, fake_provider):
    fake_provider.script("deepseek-chat", answer("4", prompt_tokens=20, completion_tokens=500))
    with TestClient(example_app) as client:
        first = client.post("/ask", json={"question": "What is 2+2?", "user": "alice"})
        assert first.status_code == 200, first.text
        doc = first.json()
        assert doc["answer"] == "4" and doc["model"] == "deepseek-v2" and doc["escalated"] is False
        assert doc["cost_usd"] == pytest.approx((20 * 0.14 + 500 * 0.28) / 1e6)
        assert client.get("/spend/alice").json() == {"spent_usd": pytest.approx(doc["cost_usd"])}
        refused = client.post("/ask", json={"question": "What is 3+3?", "user": "alice"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
