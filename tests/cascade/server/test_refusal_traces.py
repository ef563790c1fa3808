"""Through ``cascade serve`` with keys: a request refused by a user's cap is answered 429, counted in
``/metrics`` as before, and written to the trace as one ``refused`` line with the key's user name and
neither the key nor the prompt."""
from __future__ import annotations

import httpx

from cascade.trace import read_traces
from tests.harness.fake_provider import answer

from .conftest import ALICE_KEY, API_KEYS


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}}") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_served_refusal_is_counted_and_traced(serve, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=10, completion_tokens=100_000))
    traces = tmp_path / "traces.jsonl"
    served = serve(keys=API_KEYS, user_cap_usd=0.02, cap_window="day", trace_path=traces)
    headers = {"Authorization": f"Bearer {ALICE_KEY}"}
    body = {"model": "cascade", "max_tokens": 16, "messages": [{"role": "user", "content": "q"}]}
    assert httpx.post(served.base_url + "/chat/completions", json=body, headers=headers, timeout=30).status_code == 200
    secret_prompt = {**body, "messages": [{"role": "user", "content": "my private question"}]}
    refused = httpx.post(served.base_url + "/chat/completions", json=secret_prompt, headers=headers, timeout=30)
    assert refused.status_code == 429
    metrics = httpx.get(served.url + "/metrics", timeout=30).text
    assert _metric(metrics, "cascade_requests_total", model="none", outcome="budget_exceeded") == 1
    assert _metric(metrics, "cascade_budget_refusals_total", scope="user", window="day") == 1
    lines = read_traces(traces)
    assert [(d["outcome"], d["user"]) for d in lines] == [("ok", "alice"), ("refused", "alice")]
    assert lines[1]["error"] == "BudgetExceeded: " + refused.json()["error"]["message"]
    text = traces.read_text()
    assert ALICE_KEY not in text and "my private question" not in text
