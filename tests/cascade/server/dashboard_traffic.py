"""Traffic for the dashboard tests (plain answers, escalations, refusals, unknown models) and the figures
the dashboard must show, recomputed here from ``/metrics`` text and the budget store's ledger."""
from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.fake_provider import answer, empty

OPS_KEY = "sk-cascade-ops-5c1b2a9d77"


USER_CAP_USD = 0.001       # start the server with this per-user cap: max_tokens=4000 is over it


def chat(url: str, key: str, model: str = "cascade", *, max_tokens: int = 50) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                      json={"model": model, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": "What is the capital of France?"}]})


def send_traffic(fake: Any, url: str, alice: str, bob: str, *, rounds: int = 1) -> list[int]:
    """Per round: 3 cheap answers (alice), 2 escalated ones (the cheap answer is empty; bob, through
    cascade/budget-strict), an unknown model, a request over the user cap, a body that is not JSON."""
    codes = []
    for _ in range(rounds):
        fake.script("deepseek-chat", answer("Paris.", prompt_tokens=20, completion_tokens=10))
        fake.script("gpt-4o", answer("Paris, France.", prompt_tokens=2, completion_tokens=1))
        codes += [chat(url, alice).status_code for _ in range(3)]
        fake.script("deepseek-chat", empty())
        codes += [chat(url, bob, "cascade/budget-strict").status_code for _ in range(2)]
        codes.append(chat(url, alice, "cascade/nope").status_code)
        codes.append(chat(url, bob, max_tokens=4000).status_code)
        codes.append(httpx.post(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {alice}"},
                                content=b"{not json", timeout=30).status_code)
    return codes


EXPECTED_CODES = [200, 200, 200, 200, 200, 404, 429, 400]


def metrics_samples(url: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=30).text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def expected_from_metrics(url: str) -> dict[str, Any]:
    """What the dashboard should say about traffic, straight from ``/metrics``."""
    samples = metrics_samples(url)
    answered: dict[str, float] = {}
    errors: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for (name, labels), value in samples.items():
        lab = dict(labels)
        if name == "cascade_requests_total" and value:
            into = answered if lab["outcome"] in ("ok", "best_answer") else errors
            key = lab["model"] if into is answered else lab["outcome"]
            into[key] = into.get(key, 0) + value
        if name == "cascade_request_duration_seconds_bucket":
            buckets[float(lab["le"])] = buckets.get(float(lab["le"]), 0) + value
    reasons = {dict(lb)["reason"]: v for (n, lb), v in samples.items()
               if n == "cascade_escalation_reasons_total" and v}
    return {"answered": answered, "errors": errors, "reasons": reasons, "buckets": sorted(buckets.items()),
            "escalated": samples[("cascade_escalations_total", ())],
            "spend": samples[("cascade_spend_usd_total", ())]}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile, written out again here to check the dashboard's."""
    total = buckets[-1][1]
    rank, prev_bound, prev_count = q * total, 0.0, 0.0
    for bound, cum in buckets:
        if cum >= rank:
            if bound == float("inf"):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (cum - prev_count)
        prev_bound, prev_count = bound, cum
    raise AssertionError("no bucket holds the rank")


def expected_from_ledger(store: Any) -> dict[str, Any]:
    by_model: dict[str, float] = {}
    by_user: dict[str, float] = {}
    by_day: dict[str, float] = {}
    for e in store.ledger():
        by_model[e.model] = by_model.get(e.model, 0) + e.cost_usd
        by_user[e.user or "(no user)"] = by_user.get(e.user or "(no user)", 0) + e.cost_usd
        day = time.strftime("%Y-%m-%d", time.gmtime(e.at))
        by_day[day] = by_day.get(day, 0) + e.cost_usd
    return {"model": by_model, "user": by_user, "day": by_day, "total": store.total_spent()}
