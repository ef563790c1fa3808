"""Quickstart: one easy and one hard prompt through ``Router("default")``.

    export DEEPSEEK_API_KEY=...  OPENAI_API_KEY=...
    python examples/quickstart.py

The ``default`` policy sends a prompt to DeepSeek-V2 first and escalates to GPT-4o when its classifier
says the prompt is hard or DeepSeek-V2's answer fails a check. For each prompt this prints the dry run
(``router.route``: the score and the plan, no call), then the answer and, from ``resp.cascade``, the
model that answered, whether it escalated, what it cost and every attempt.

Without the keys it prints which variables to set and exits 0 without calling anything. The base-URL
variables (``DEEPSEEK_API_BASE``, ``OPENAI_API_BASE``) point the models at any OpenAI-compatible server
(vLLM, SGLang, a local proxy, ...).
"""
from __future__ import annotations

import os
import sys

from cascade import BudgetExceeded, EscalationExhausted, ProviderError, Router
from cascade.providers import warm_up

KEYS = {"DEEPSEEK_API_KEY": "DeepSeek-V2, the cheap model that answers first",
        "OPENAI_API_KEY": "GPT-4o, the strong model escalated to"}
BASES = {"DEEPSEEK_API_BASE": "https://api.deepseek.com", "OPENAI_API_BASE": "https://api.openai.com/v1"}
EASY = "What is the capital of France? Answer in one word."
HARD = ("Prove step by step that the square root of 2 is irrational, and explain why the proof by "
        "contradiction works.")


def missing_keys() -> list[str]:
    return [name for name in KEYS if not os.environ.get(name)]


def print_guidance(missing: list[str]) -> None:
    print("deepseek-cascade quickstart: provider keys are not set, so nothing was called.\n")
    print("Set these environment variables:")
    for name, what in KEYS.items():
        state = "missing" if name in missing else "set"
        print(f"  {'export ' + name + '=...':46s} # {what} ({state})")
    print("\nOptional: point a model at any OpenAI-compatible server (vLLM, SGLang, a proxy, ...):")
    for name, default in BASES.items():
        print(f"  {'export ' + name + '=http://host:port/v1':46s} # default: {default}")
    print("\nTo see what the router would do without calling a model:"
          "\n  cascade route \"Prove that sqrt(2) is irrational\" --json")


def show_plan(router: Router, messages: list[dict]) -> None:
    routed = router.route(messages)                  # dry run: score + plan, no call, no spend
    print(f"  dry run (no call): score {routed.score:.3f}, plan:")
    for i, attempt in enumerate(routed.plan.attempts, 1):
        print(f"    {i}. {attempt.model:12s} (est. ≤ ${attempt.est_cost_usd:.6f})  {attempt.reason}")


def show_answer(resp) -> None:
    trace = resp.cascade                             # the RouteTrace
    text = (resp.choices[0].message.content or "").strip()
    print(f"  answer:  {text[:300]}{'...' if len(text) > 300 else ''}")
    print(f"  model {trace.model}, escalated {trace.escalated}, cost ${trace.cost_usd:.6f}, "
          f"{trace.latency_s:.2f}s, outcome {trace.outcome}")
    for a in trace.attempts:
        tokens = f"{a.prompt_tokens}+{a.completion_tokens} tokens" if a.prompt_tokens else "no tokens"
        extra = f" [{a.error}]" if a.error else ""
        print(f"    - {a.model:12s} {a.status:12s} {tokens}, ${a.cost_usd:.6f}: {a.reason}{extra}")


def main() -> int:
    missing = missing_keys()
    if missing:
        print_guidance(missing)
        return 0
    router = Router("default")                       # built-in policy; budget ledger in ~/.cascade/spend.db
    warm_up()                                        # litellm's import (seconds) here, not in the first latency
    try:
        for label, prompt in (("easy", EASY), ("hard", HARD)):
            messages = [{"role": "user", "content": prompt}]
            print(f"\n[{label}] {prompt}")
            show_plan(router, messages)
            try:
                resp = router.complete(messages, user="quickstart")
            except (BudgetExceeded, EscalationExhausted, ProviderError) as exc:
                print(f"  failed: {type(exc).__name__}: {exc}")
                return 1
            show_answer(resp)
    finally:
        router.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
