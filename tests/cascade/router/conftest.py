"""Router tests: a Router wired to the local fake provider through the providers' env variables."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import numpy as np
import pytest

from cascade.budget import open_budget_store
from cascade.router import Router

MODELS = {"deepseek-v2": "deepseek-chat", "gpt-4o": "gpt-4o", "deepseek-vl2": "deepseek-vl2",
          "deepseek-ocr-2": "deepseek-ocr-2"}
KEYS = {"DEEPSEEK_API_KEY": "sk-test-deepseek-SECRET-1111", "OPENAI_API_KEY": "sk-test-openai-SECRET-2222",
        "DEEPSEEK_VL2_API_KEY": "sk-test-vl2-SECRET-3333", "DEEPSEEK_OCR_API_KEY": "sk-test-ocr-SECRET-4444"}


class FixedScore:
    """A classifier that returns one score: the tests choose cheap-first or straight-to-strong."""

    name = "fixed"

    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, texts: list[str]) -> np.ndarray:
        return np.full(len(texts), self.value)

    def score_one(self, text: str) -> float:
        return self.value


class Sleeps:
    """Records the router's backoff sleeps instead of waiting them out."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


def provider_env(url: str) -> dict[str, str]:
    env = dict(KEYS)
    for var in ("DEEPSEEK_API_BASE", "OPENAI_API_BASE", "DEEPSEEK_VL2_API_BASE", "DEEPSEEK_OCR_API_BASE"):
        env[var] = url
    return env


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/spend.db"
    s = open_budget_store(url)
    yield s
    s.close()


@pytest.fixture
def make_router(fake_provider: Any, store: Any, tmp_path: Any) -> Callable[..., Router]:
    routers: list[Router] = []

    def make(policy: Any = "default", *, score: float = 0.1, **kw: Any) -> Router:
        kw.setdefault("budget_store", store)
        kw.setdefault("sleep", Sleeps())
        kw.setdefault("trace_path", tmp_path / "traces.jsonl")
        router = Router(policy, classifier=FixedScore(score), env=provider_env(fake_provider.url), seed=0, **kw)
        routers.append(router)
        return router

    yield make
    # The ledger invariant after every test, failures included: nothing left reserved, and the ledger
    # equals the sum of the attempts' costs the routers reported.
    for router in routers:
        assert router.store.open_reservations() == 0
    for router in routers:
        router.close()


def user_msg(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
