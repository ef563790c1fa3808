"""Per-request decision time: features + score + decide, beside litellm's complexity-router heuristic.

    python benchmarks/bench_decide.py [--n 2000] [--policy default]

Ours, per prompt: validate the messages, count prompt tokens with the DeepSeek tokenizer, score with the
policy's classifier, decide the Plan. Peer: ``ComplexityRouter.classify(prompt)`` (which only classifies).
Both run on the same MMLU-Pro prompts in this process; the ratio is what matters.
"""
from __future__ import annotations

import argparse
import time

from _common import litellm_heuristic, pct, sample_prompts


def time_each(fn, prompts: list[str]) -> list[float]:
    out = []
    for p in prompts:
        t = time.perf_counter()
        fn(p)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--policy", default="default")
    args = ap.parse_args()

    from classifiers import load_classifier
    from cascade.planning import build_request
    from policies.engine import decide
    from policies.loader import load_policy

    prompts = sample_prompts("mmlu_pro", args.n)
    policy = load_policy(args.policy)
    clf = load_classifier(policy.routing.classifier)

    def ours(prompt: str) -> None:
        request = build_request([{"role": "user", "content": prompt}], {}, None, policy)
        decide(policy, request, clf.score_one(request.text))

    peer = litellm_heuristic()
    for fn in (ours, lambda p: peer.classify(p)):       # warm up (tokenizer load, regex caches)
        time_each(fn, prompts[:50])
    t_ours = time_each(ours, prompts)
    t_clf = time_each(clf.score_one, prompts)
    t_peer = time_each(lambda p: peer.classify(p), prompts)
    rows = [("deepseek-cascade: messages+tokens+score+decide", t_ours),
            (f"deepseek-cascade: classifier only ({policy.routing.classifier})", t_clf),
            ("litellm complexity_router heuristic classify()", t_peer)]
    print(f"{len(prompts)} MMLU-Pro prompts, policy {policy.name!r}\n")
    print(f"{'':52s} {'p50 µs':>10s} {'p99 µs':>10s}")
    for name, t in rows:
        print(f"{name:52s} {pct(t, 50):10.1f} {pct(t, 99):10.1f}")
    print(f"\nspeed-up of the full decision over litellm's heuristic at p50: {pct(t_peer, 50) / pct(t_ours, 50):.1f}x"
          f"  (p99: {pct(t_peer, 99) / pct(t_ours, 99):.1f}x)")


if __name__ == "__main__":
    main()
