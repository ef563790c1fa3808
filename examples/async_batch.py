"""Answer a batch of prompts concurrently through ``Router.acomplete``, with a per-user spending cap.

    export DEEPSEEK_API_KEY=...  OPENAI_API_KEY=...
    python examples/async_batch.py [--concurrency 8] [--user-cap 0.01] [--cap-window day]

    # or against any OpenAI-compatible server, e.g. the test suite's scripted fake provider:
    python -m tests.harness.fake_provider --port 0          # prints READY http://127.0.0.1:PORT/v1
    python examples/async_batch.py --base-url http://127.0.0.1:PORT/v1 --budget-store memory://

Each prompt belongs to a user; ``Router(..., user_cap_usd=..., cap_window=...)`` caps what each user may
spend in that window (over the policy's own per-user caps). ``asyncio.gather`` runs the batch, a
semaphore bounds how many requests are in flight, and each item catches its own ``BudgetExceeded``
(a cap refused it) or ``EscalationExhausted`` (every model failed), so one refusal does not sink the
batch. The summary: answers by model, escalations, total cost, refusals.

Without the provider keys it prints which variables to set and exits 0 without calling anything.
``--base-url`` sets ``DEEPSEEK_API_BASE`` and ``OPENAI_API_BASE`` to one server (for this run only); a key
that is not set then gets a placeholder, since local servers usually ignore it.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cascade import BudgetExceeded, EscalationExhausted, Router

KEY_VARS = ("DEEPSEEK_API_KEY", "OPENAI_API_KEY")
BASE_VARS = ("DEEPSEEK_API_BASE", "OPENAI_API_BASE")
PLACEHOLDER_KEY = "sk-local-placeholder"

BATCH = [  # (user, prompt)
    ("alice", "What is the capital of France?"),
    ("alice", "Translate 'good morning' into Spanish."),
    ("alice", "Write a haiku about autumn leaves."),
    ("bob", "Name three primary colors."),
    ("bob", "Prove step by step that the square root of 2 is irrational, and explain why the proof by "
            "contradiction works."),
    ("bob", "What is 12 times 12?"),
    ("carol", "Design an algorithm to find the k-th smallest element of two sorted arrays in O(log k) "
              "time; prove its correctness and analyze its complexity."),
    ("carol", "Explain why the sky is blue in two sentences."),
    ("carol", "Give a synonym for 'happy'."),
    ("dave", "Summarise the plot of Romeo and Juliet in one sentence."),
    ("dave", "Derive the formula for the sum of the first n integers and prove it by induction."),
    ("dave", "Which ocean is the largest?"),
]


@dataclass
class Outcome:
    user: str
    prompt: str
    model: str | None = None
    escalated: bool = False
    downgraded: bool = False            # a cap left room only for a cheaper model than planned
    best_answer: bool = False           # no answer passed its checks; the best one was returned
    cost_usd: float = 0.0
    answer: str = ""
    refused: str | None = None          # "BudgetExceeded" / "EscalationExhausted"
    detail: str = ""


def provider_env(base_url: str | None) -> tuple[dict[str, str] | None, list[str]]:
    """The environment the Router reads keys and base URLs from, or (None, missing keys)."""
    env = dict(os.environ)
    missing = [k for k in KEY_VARS if not env.get(k)]
    if base_url is None:
        return (None, missing) if missing else (env, [])
    for var in BASE_VARS:
        env[var] = base_url
    for var in missing:
        env[var] = PLACEHOLDER_KEY
    return env, missing


def print_guidance(missing: list[str]) -> None:
    print("async_batch: provider keys are not set, so nothing was called.\n")
    print("Set these environment variables:")
    print("  export DEEPSEEK_API_KEY=...   # DeepSeek-V2, the cheap model that answers first")
    print("  export OPENAI_API_KEY=...     # GPT-4o, the strong model escalated to")
    print(f"(missing now: {', '.join(missing)})")
    print("\nBase URLs can point to any OpenAI-compatible server (vLLM, SGLang, a proxy, ...):")
    print("  export DEEPSEEK_API_BASE=http://host:port/v1")
    print("  export OPENAI_API_BASE=http://host:port/v1")
    print("or pass --base-url http://host:port/v1 to send both models to one server for this run, e.g. the\n"
          "test suite's fake provider: python -m tests.harness.fake_provider --port 0")


async def answer_one(router: Router, sem: asyncio.Semaphore, user: str, prompt: str) -> Outcome:
    out = Outcome(user, prompt)
    async with sem:
        try:
            resp = await router.acomplete([{"role": "user", "content": prompt}], user=user)
        except BudgetExceeded as exc:
            out.refused, out.detail = "BudgetExceeded", str(exc)
            return out
        except EscalationExhausted as exc:
            out.refused, out.detail = "EscalationExhausted", str(exc)
            if exc.trace is not None:          # failed attempts may still have been paid for
                out.cost_usd = exc.trace.cost_usd
            return out
    trace = resp.cascade
    out.model, out.escalated, out.cost_usd = trace.model, trace.escalated, trace.cost_usd
    out.downgraded = "downgraded" in trace.plan_reason
    out.best_answer = trace.outcome == "best_answer"
    out.answer = (resp.choices[0].message.content or "").strip()
    return out


async def run_batch(router: Router, concurrency: int) -> list[Outcome]:
    sem = asyncio.Semaphore(concurrency)
    return await asyncio.gather(*(answer_one(router, sem, user, prompt) for user, prompt in BATCH))


def print_summary(outcomes: list[Outcome], cap: str) -> None:
    for i, o in enumerate(outcomes, 1):
        if o.refused:
            what = f"REFUSED ({o.refused}): {o.detail[:140]}"
        else:
            flags = [f for f, on in (("escalated", o.escalated), ("downgraded at cap", o.downgraded),
                                     ("best answer, checks failed", o.best_answer)) if on]
            note = f" ({', '.join(flags)})" if flags else ""
            what = f"{o.model}{note} ${o.cost_usd:.6f}  {o.answer[:50]!r}"
        print(f"{i:3d}. {o.user:6s} {o.prompt[:44]:44s}  {what}")
    answered = [o for o in outcomes if not o.refused]
    by_model = Counter(o.model for o in answered)
    refusals = Counter(o.refused for o in outcomes if o.refused)
    print(f"\nsummary ({cap}):")
    print(f"  answered:    {len(answered)}/{len(outcomes)}")
    print(f"  by model:    {', '.join(f'{m} {n}' for m, n in by_model.most_common()) or '-'}")
    print(f"  escalations: {sum(o.escalated for o in answered)}")
    print(f"  downgraded:  {sum(o.downgraded for o in answered)} (a user cap left room only for a cheaper model)")
    print(f"  total cost:  ${sum(o.cost_usd for o in outcomes):.6f}")
    print(f"  refusals:    {sum(refusals.values())}"
          + (f" ({', '.join(f'{k} {n}' for k, n in refusals.items())})" if refusals else ""))
    per_user = Counter()
    for o in outcomes:
        per_user[o.user] += o.cost_usd
    print("  per user:    " + ", ".join(f"{u} ${c:.6f}" for u, c in per_user.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="default", help="built-in policy name or YAML path")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    ap.add_argument("--user-cap", type=float, default=0.05, help="USD each user may spend per window")
    ap.add_argument("--cap-window", default="day", choices=["minute", "hour", "day", "month", "total"])
    ap.add_argument("--base-url", help="send DeepSeek and OpenAI requests to this OpenAI-compatible server")
    ap.add_argument("--budget-store", help="memory://, sqlite:///path, redis://...; default: the policy's")
    args = ap.parse_args(argv)

    env, missing = provider_env(args.base_url)
    if env is None:
        print_guidance(missing)
        return 0
    if args.base_url:
        print(f"both models -> {args.base_url}"
              + (f" (placeholder key for {', '.join(missing)})" if missing else ""))
    router = Router(args.policy, env=env, budget_store=args.budget_store,
                    user_cap_usd=args.user_cap, cap_window=args.cap_window)
    try:
        outcomes = asyncio.run(run_batch(router, args.concurrency))
    finally:
        router.close()
    print_summary(outcomes, f"per-user cap ${args.user_cap:g} per {args.cap_window}, "
                            f"budget store {router.store.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
