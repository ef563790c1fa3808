"""4 processes x 100 concurrent requests through the Router against one Redis global cap: committed spend
never exceeds the cap, no reservation is left, the sum of per-request costs equals the store's total.

Each worker process (``redis_worker.py``, forked from a parent that imported litellm once) runs its own
``Router("default", budget_store=<redis url>, global_cap_usd=CAP)`` and fires 100 ``acomplete`` calls at
once (``asyncio.gather(return_exceptions=True)``) against a ``FakeProviderProcess`` whose every answer
reports the same usage. The cap is sized so that about half of the 400 requests can be paid for: a request
costs COST (that usage at DeepSeek-V2's price in the default policy) and CAP = 200.5 x COST. A request
reserves its worst case (the prompt's byte bound + max_tokens) and commits COST, so between
CAP / worst case (~145: every request holding its reservation at once) and CAP / COST = 200 requests are
answered; the others must be refused with BudgetExceeded, and nothing else may escape.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cascade.budget import open_budget_store
from cascade.trace import read_traces
from policies.budget import to_nano
from policies.loader import load_policy
from tests.harness.fake_provider import FakeProviderProcess

WORKER = Path(__file__).with_name("redis_worker.py")
ROOT = Path(__file__).resolve().parents[3]
REDIS_DB = 4                      # a database of the session's redis-server that no other test uses
WORKERS, REQUESTS = 4, 100
SCORE = 0.1                       # below the default policy's threshold: DeepSeek-V2 first
MAX_TOKENS = 256
PROMPT_TOKENS, COMPLETION_TOKENS = 16, 200          # the usage the fake provider reports for every answer
POLICY = load_policy("default")
# what the provider sees as the model name -> that model's price in the default policy
PRICES = {spec.litellm_model.split("/", 1)[1]: spec.price for spec in POLICY.catalog.values()}
COST_NANO = to_nano(POLICY.catalog["deepseek-v2"].price.cost(PROMPT_TOKENS, COMPLETION_TOKENS))
CAP_USD = (WORKERS * REQUESTS // 2 + 0.5) * COST_NANO / 1e9      # room for 200 answers, not 201
# An answer the default policy's checks accept (its answer checker scores it ~0.12 < 0.16), so DeepSeek-V2
# answers alone; the scripted usage, not the text's length, is what is billed.
ANSWER = "Jupiter is the largest planet in the solar system."
SCRIPT = {"fallback": {"default": {"kind": "answer", "content": ANSWER, "latency": [0.005, 0.03],
                                   "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS},
                       "seed": 11}}


def run_workers(config: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """The fork server and its workers, in their own process group (all killed if they overrun)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.Popen([sys.executable, str(WORKER), str(config)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"workers did not finish in {timeout_s} s:\n{err[-5000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.redis
@pytest.mark.timeout(180)
def test_four_processes_share_one_redis_global_cap(redis_server, tmp_path):
    import redis

    url = redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    raw = redis.Redis.from_url(url, decode_responses=True)
    raw.flushdb()
    started = time.monotonic()
    with FakeProviderProcess(SCRIPT) as provider:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"store": url, "provider": provider.url, "cap_usd": CAP_USD,
                                      "workers": WORKERS, "requests": REQUESTS, "max_tokens": MAX_TOKENS,
                                      "score": SCORE, "out": str(tmp_path)}))
        proc = run_workers(config, timeout_s=150)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, f"workers failed:\n{proc.stderr[-5000:]}"
        tally = provider.tally()["models"]

    reports = [json.loads((tmp_path / f"worker-{k}.json").read_text()) for k in range(WORKERS)]
    answered = [a for r in reports for a in r["answered"]]
    refused = [e for r in reports for e in r["refused"]]
    reserves = json.loads((tmp_path / "plan.json").read_text())["attempts"][0]   # [model, est. cost]

    # every request came back: an answer, or a typed BudgetExceeded from the global cap, and nothing else
    assert len(answered) + len(refused) == WORKERS * REQUESTS
    untyped = [e for e in refused if not e["typed"]]
    assert not untyped, f"untyped exceptions escaped the Router: {untyped[:5]}"
    others = [e for e in refused if e["type"] != "policies.errors.BudgetExceeded"]
    assert not others, f"requests failed with something other than BudgetExceeded: {others[:5]}"
    assert all((e["scope"], e["window"]) == ("global", "total") for e in refused), refused[:5]
    assert answered, "no request was answered"
    assert refused, "no request was refused: the cap did not bind"
    assert len({a["request_id"] for a in answered}) == len(answered)
    # Redis' atomic reserve itself turned down attempts that had been planned with room left: the
    # processes plan at the same time, so the planning snapshot alone cannot hold the cap
    # every worker wrote its trace, one line per request: a refusal too (outcome refused, its user), whether
    # it came while planning (no attempt) or from a reservation the store turned down during the walk
    files = [tmp_path / f"traces-{k}.jsonl" for k in range(WORKERS)]
    assert all(f.exists() for f in files), [f.name for f in files if not f.exists()]
    traces = [t for f in files for t in read_traces(f)]
    assert len(traces) == WORKERS * REQUESTS
    refused_lines = [t for t in traces if t["outcome"] == "refused"]
    assert len(refused_lines) == len(refused)
    assert all(t["error"].startswith("BudgetExceeded: ") and t["user"].startswith("user-") for t in refused_lines)
    assert sorted(t["request_id"] for t in traces if t["outcome"] == "ok") == sorted(a["request_id"] for a in answered)
    held_off = [t for t in traces if any(a["status"] == "skipped" and a["reason"].startswith("budget:")
                                         for a in t["attempts"])]
    assert held_off, "the store never refused a reservation: the cap was not contended"

    store = open_budget_store(url)
    try:
        spent = store.total_spent()
        # committed spend never exceeds the cap
        assert spent <= CAP_USD + 1e-12, f"spent ${spent:.9f} > cap ${CAP_USD:.9f}"
        # no reservation is left: none open, none expired and left behind
        assert store.open_reservations() == 0
        assert raw.zcard("cascade:reservations") == 0
        assert not raw.keys("cascade:r:*")
        # the sum of the per-request costs the Routers reported equals the store's total
        reported = math.fsum(a["cost_usd"] for a in answered)
        assert reported == pytest.approx(spent, abs=1e-12)
        assert sum(to_nano(a["cost_usd"]) for a in answered) == to_nano(spent)
        # and so does what the provider served, at the policy's prices
        served = math.fsum(PRICES[name].cost(m["prompt_tokens"], m["completion_tokens"]) for name, m in tally.items())
        assert served == pytest.approx(spent, abs=1e-12)
        assert sum(m["completions"] for m in tally.values()) == len(store.ledger())
    finally:
        store.close()
        raw.close()

    by_model = {m: sum(a["model"] == m for a in answered) for m in sorted({a["model"] for a in answered})}
    print(f"\n{WORKERS} processes x {REQUESTS} requests in {elapsed:.1f} s (fork server included): "
          f"{len(answered)} answered {by_model}, per process {[len(r['answered']) for r in reports]}; "
          f"{len(refused)} refused; {len(held_off)} requests met a refused reservation. Spent ${spent:.6f} "
          f"of ${CAP_USD:.6f} ({spent / CAP_USD:.1%}); a request costs ${COST_NANO / 1e9:.6f} and "
          f"reserves ${reserves[1]:.6f} ({reserves[0]}, max_tokens {MAX_TOKENS})")
