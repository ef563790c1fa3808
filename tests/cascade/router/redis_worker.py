"""Worker processes for ``test_redis_processes.py``: N processes, each with its own Router on one Redis.

litellm's import takes ~8 s (more on a loaded 2-core machine), so this script imports the Router, litellm,
the answer checker and the tokenizer once, then forks the workers (a fork server, as in
``tests/reliability/sigkill_worker.py``). Each worker is a real process with its own Router, Redis
connections and event loop; the parent never made a call and holds no connection or thread.

    python tests/cascade/router/redis_worker.py CONFIG.json

CONFIG: {"store": URL, "provider": URL, "cap_usd": float, "workers": N, "requests": M,
         "max_tokens": T, "score": s, "out": DIR}

Every worker builds its Router, then waits on a start pipe so that all of them fire together:
M concurrent ``Router.acomplete`` calls (``asyncio.gather(return_exceptions=True)``). It writes
``DIR/worker-<k>.json`` (and its Router's traces to ``DIR/traces-<k>.jsonl``)::

    {"answered": [{"request_id", "cost_usd", "model", "attempts"}...],
     "refused":  [{"type": "module.Name", "typed": bool, "scope", "window", "message"}...],
     "started": epoch s, "finished": epoch s}

The parent writes ``DIR/plan.json`` (one request's plan against an empty budget: what it reserves) and
exits 0 when every worker exited 0.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "[w{k}:{i:03d}] Name the largest planet in the solar system."


def messages(k: int, i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT.format(k=k, i=i)}]


def make_router(cfg: dict[str, Any], store: str, seed: int, trace_path: Path | None = None) -> Any:
    from cascade.router import Router
    from tests.cascade.router.conftest import FixedScore, provider_env
    return Router("default", budget_store=store, global_cap_usd=cfg["cap_usd"], cap_window="total",
                  classifier=FixedScore(cfg["score"]), env=provider_env(cfg["provider"]), seed=seed,
                  trace_path=trace_path)


def _refusal(exc: BaseException) -> dict[str, Any]:
    from policies.errors import CascadeError
    return {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "typed": isinstance(exc, CascadeError),
            "scope": getattr(exc, "scope", None), "window": getattr(exc, "window", None),
            "message": str(exc)[:300]}


async def _fire(router: Any, k: int, n: int, max_tokens: int) -> dict[str, Any]:
    t0 = time.time()
    results = await asyncio.gather(*(router.acomplete(messages(k, i), user=f"user-{k}-{i % 5}",
                                                      max_tokens=max_tokens) for i in range(n)),
                                   return_exceptions=True)
    t1 = time.time()
    await router.aclose()
    answered, refused = [], []
    for r in results:
        if isinstance(r, BaseException):
            refused.append(_refusal(r))
        else:
            t = r.cascade
            answered.append({"request_id": t.request_id, "cost_usd": t.cost_usd, "model": t.model,
                             "attempts": [[a.model, a.status, a.cost_usd] for a in t.attempts]})
    return {"answered": answered, "refused": refused, "started": t0, "finished": t1}


def run_worker(cfg: dict[str, Any], k: int, ready_w: int, go_r: int) -> None:
    router = make_router(cfg, cfg["store"], seed=k, trace_path=Path(cfg["out"]) / f"traces-{k}.jsonl")
    router.route(messages(k, 0), max_tokens=cfg["max_tokens"])   # connected to Redis before the start
    os.write(ready_w, b"r")
    os.read(go_r, 1)                      # EOF when the parent closes its end: everybody starts
    report = asyncio.run(_fire(router, k, cfg["requests"], cfg["max_tokens"]))
    out = Path(cfg["out"]) / f"worker-{k}.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.rename(out)


def main(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    from cascade.providers import warm_up
    warm_up()                             # litellm, once
    # A throwaway Router on a memory store loads the answer checker and the policy; one dry run loads
    # the tokenizer and tells the test what one request reserves.
    probe = make_router(cfg, "memory://", seed=0)
    plan = probe.route(messages(0, 0), max_tokens=cfg["max_tokens"]).plan
    probe.close()
    Path(cfg["out"], "plan.json").write_text(json.dumps(
        {"attempts": [[a.model, a.est_cost_usd] for a in plan.attempts]}))

    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for k in range(cfg["workers"]):
        pid = os.fork()
        if pid == 0:                      # the worker
            code = 1
            try:
                os.close(ready_r)
                os.close(go_w)
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)       # litellm's prints stay out of the parent's output
                run_worker(cfg, k, ready_w, go_r)
                code = 0
            except BaseException:  # noqa: BLE001 - reported on stderr, exit code 1
                traceback.print_exc()
                os.write(ready_w, b"x")   # never leave the parent waiting for this worker
            finally:
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    os.close(go_r)
    got = b""
    while len(got) < len(pids):
        chunk = os.read(ready_r, len(pids))
        if not chunk:
            break
        got += chunk
    os.close(go_w)                        # go
    failed = []
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed.append((pid, status))
    if failed:
        print(f"workers failed: {failed} (ready bytes {got!r})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
