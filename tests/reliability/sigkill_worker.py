"""A Router worker for the SIGKILL test, started through a fork server ("zygote").

litellm's import takes 6-20 s on a loaded 2-core machine; paying it for each of the test's restarts would
blow its time budget. So one zygote process imports the Router and litellm once, then forks a fresh
worker per request of the test (each worker is a real process with its own Router, budget-store
connection and event loop; the zygote never made a call, holds no connection and runs no thread).

Protocol (one line each way, on the zygote's stdin / stdout)::

    -> spawn {"store": URL, "prefix": P, "provider": URL, "journal": PATH, "n": N|null, "seed": S, ...}
    <- PID <pid>
    -> reap <pid>
    <- EXIT <pid> signal <n> | EXIT <pid> code <n>

A worker runs ``concurrency`` request loops through ``Router.acomplete`` (``n`` requests in all, or
forever) and appends one line per finished request to its journal (one ``write`` on an ``O_APPEND`` fd,
so a SIGKILL never leaves half a line)::

    ok <request_id> <cost in nano-dollars of every paid attempt> <late>      a response came back
    err <request_id|-> <cost nano> <late> <ErrorType>                        a typed CascadeError
    untyped - 0 0 <ErrorType>                                                anything else (a defect)

``late``: calls given up at their timeout whose answer, if it still comes, the ledger records after
the request has returned (so the ledger may hold more than the trace for that request).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORKER_POLICY = """
name: sigkill-worker
extends: default
routing: {classifier: heuristic, thresholds: [0.5]}
escalation:
  checks: [non_empty, not_truncated]
  on_exhausted: best_answer
retries:
  rate_limit: {attempts: 3, backoff: {initial_s: 0.01, multiplier: 2, max_s: 0.1, jitter_s: 0.01}}
  server_error: {attempts: 3, backoff: {initial_s: 0.01, multiplier: 2, max_s: 0.1, jitter_s: 0.01}}
  connection: {attempts: 3, backoff: {initial_s: 0.01, multiplier: 2, max_s: 0.1, jitter_s: 0.01}}
  timeout: {attempts: 2, backoff: {initial_s: 0.01, multiplier: 2, max_s: 0.1, jitter_s: 0.01}}
  attempt_timeout_s: 2
  deadline_s: 10
budgets:
  store: memory://
  per_request_usd: 0.5
  reservation_ttl_s: %(ttl)s
circuit_breaker: {failures: 20, cooldown_s: 1}
"""
KEYS = {"DEEPSEEK_API_KEY": "sk-sigkill-deepseek-0000", "OPENAI_API_KEY": "sk-sigkill-openai-0000"}
PROMPTS = ["What is 2+2?", "Name three primary colors.", "Prove that sqrt(2) is irrational.",
           "Write a Python function that implements a red-black tree with deletion, and analyse its "
           "complexity step by step.", "Translate 'hello' to Spanish."]
GLOBAL_CAP_USD, USER_CAP_USD = 1_000.0, 100.0


def worker_policy(ttl_s: float) -> Any:
    from policies.loader import parse_policy
    return parse_policy(WORKER_POLICY % {"ttl": ttl_s}, source="<sigkill worker policy>")


def open_store(url: str, prefix: str = "") -> Any:
    if url.startswith("redis://"):
        from cascade.budget.redis_store import RedisBudgetStore
        return RedisBudgetStore(url, prefix=prefix or "cascade:")
    from cascade.budget import open_budget_store
    return open_budget_store(url)


def _paid_nano(trace: Any) -> str:
    from policies.budget import to_nano
    attempts = getattr(trace, "attempts", ()) or ()
    late = sum(1 for a in attempts if (a.error or "").startswith("ProviderTimeout"))
    return f"{sum(to_nano(a.cost_usd) for a in attempts)} {late}"


async def _loop(router: Any, journal_fd: int, k: int, counter: list[int], n: int | None) -> None:
    from policies.errors import CascadeError
    while n is None or counter[0] < n:
        counter[0] += 1
        i = counter[0]
        prompt = f"[{os.getpid()}:{i}] {PROMPTS[i % len(PROMPTS)]}"
        try:
            resp = await router.acomplete([{"role": "user", "content": prompt}], user=f"user-{i % 4}")
            line = f"ok {resp.cascade.request_id} {_paid_nano(resp.cascade)}\n"
        except CascadeError as exc:
            trace = getattr(exc, "trace", None)
            rid = getattr(trace, "request_id", None) or "-"
            line = f"err {rid} {_paid_nano(trace)} {type(exc).__name__}\n"
        except Exception as exc:  # noqa: BLE001 - journalled: the test fails on it
            line = f"untyped - 0 0 {type(exc).__name__}\n"
        os.write(journal_fd, line.encode())


def run_worker(cfg: dict[str, Any]) -> int:
    from cascade.router import Router
    env = {**KEYS, "DEEPSEEK_API_BASE": cfg["provider"], "OPENAI_API_BASE": cfg["provider"]}
    store = open_store(cfg["store"], cfg.get("prefix", ""))
    router = Router(worker_policy(cfg["ttl"]), budget_store=store, env=env, global_cap_usd=GLOBAL_CAP_USD,
                    user_cap_usd=USER_CAP_USD, cap_window="total", seed=cfg["seed"])
    fd = os.open(cfg["journal"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    counter = [0]

    async def main() -> None:
        await asyncio.gather(*(_loop(router, fd, k, counter, cfg.get("n"))
                               for k in range(cfg.get("concurrency", 8))))
    try:
        asyncio.run(main())
    finally:
        os.close(fd)
        router.close()
        store.close()
    return 0


def zygote() -> int:
    import random
    import cascade.router  # noqa: F401 - the Router and its imports, once
    from cascade.providers import warm_up
    from classifiers import load_classifier
    warm_up()                                 # litellm
    load_classifier("heuristic")
    worker_policy(1.0)
    print("READY", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "spawn":
            cfg = json.loads(arg)
            pid = os.fork()
            if pid == 0:                      # the worker
                code = 1
                try:
                    random.seed(cfg["seed"])
                    devnull = os.open(os.devnull, os.O_RDWR)
                    os.dup2(devnull, 0)
                    os.dup2(devnull, 1)       # keep litellm's prints out of the protocol
                    log = os.open(cfg["journal"] + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                    os.dup2(log, 2)
                    code = run_worker(cfg)
                except BaseException:  # noqa: BLE001
                    import traceback
                    traceback.print_exc()
                finally:
                    sys.stderr.flush()
                    os._exit(code)
            print(f"PID {pid}", flush=True)
        elif cmd == "reap":
            pid, status = os.waitpid(int(arg), 0)
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"code {os.WEXITSTATUS(status)}"
            print(f"EXIT {pid} {how}", flush=True)
        elif cmd == "quit":
            break
    return 0


if __name__ == "__main__":
    sys.exit(zygote())
