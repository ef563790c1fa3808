"""Routing quality and scoring speed of our classifier / cascade against litellm's classifiers.

    /work/venv/bin/python benchmarks/bench_routing.py [--data DIR ...] [--peer-limit N]

For every data set (its natural cheap -> strong pair from meta.json), on the held-out TEST split
(classifiers.splits; never used for training or tuning), one table of:
  ours: default   the default trained prompt classifier (all four data sets' train splits);
                  on mmlu_pro also "mmlu-pro", the one trained on MMLU-Pro alone
  ... + checker   the cascade: classifier >= t1 -> strong, else cheap answer escalated to strong
                  (paying both) when the default answer checker >= t2. The (t1, t2) settings are the
                  frontier chosen on the CALIBRATION split, then evaluated on test (needs responses)
  checker only    the cascade with t1 = +inf (every prompt tries the cheap model first)
  litellm heur.   ComplexityRouter.classify(prompt) score (litellm 1.110)
  litellm v2      1 - TierSuccessPredictor.predict(...).probabilities[1]
  random, oracle
Columns: APGR, CPT(50%), CPT(80%) (strong-call share), cost at 95% of the strong model's quality
(% of always-strong cost), AIQ (cost-quality hull area / cost range, in quality points).
Costs: cost_usd where the data has it (routerbench), else tokens x list price per 1M tokens:
DeepSeek-V2 $0.14 in / $0.28 out and GPT-4o $5 / $15 (2024-05); Mixtral-8x7B $0.6 / $0.6 and
GPT-4-1106 $10 / $30; llmrouter: its meta.json price per 1M on prompt tokens (no completion
counts). Then scoring speed: one prompt p50 (ours vs litellm heuristic) and batch prompts/s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import classifiers  # noqa: E402
from classifiers import metrics as M  # noqa: E402
from classifiers.training.data import RoutingData, load_dataset, load_responses  # noqa: E402

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASETS = ("mmlu_pro", "routellm_mmlu", "routerbench_subset", "llmrouter")


def litellm_peers() -> dict[str, Callable[[str], float]]:
    """litellm's two complexity classifiers as need-strong scorers."""
    from unittest.mock import MagicMock

    from litellm.router_strategy.adaptive_router.classifier import classify_prompt
    from litellm.router_strategy.complexity_router import tier_predictor
    from litellm.router_strategy.complexity_router.complexity_router import ComplexityRouter

    router = ComplexityRouter("bench", MagicMock())
    name = sorted(tier_predictor._BUILTIN_ARTIFACTS)[0]
    predictor = tier_predictor.TierSuccessPredictor(tier_predictor.resolve_tier_artifact(name))
    return {
        "litellm heuristic": lambda p: float(router.classify(p)[1]),
        f"litellm heuristic_v2 ({name})":
            lambda p: 1.0 - float(predictor.predict(p, classify_prompt(p)).probabilities[1]),
    }


def subsample(n: int, limit: int | None) -> np.ndarray:
    """Deterministic evenly spaced subsample of range(n) (all when limit is None or >= n)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(int))


def router_row(name: str, scores: np.ndarray, qc, qs, cc, cs) -> list:
    return [name, M.apgr(scores, qc, qs), M.cpt(scores, qc, qs, 0.5), M.cpt(scores, qc, qs, 0.8),
            100 * M.cost_at_quality(scores, qc, qs, cc, cs), M.router_aiq(scores, qc, qs, cc, cs)]


def cascade_row(name: str, cal: tuple, test: tuple) -> list:
    """Frontier settings chosen on calibration, evaluated on test."""
    s1c, s2c, qcc, qsc, ccc, csc = cal
    s1, s2, qc, qs, cc, cs = test
    g1 = M.threshold_grid(s1c) if np.isfinite(s1c).all() and s1c.std() > 0 else np.array([np.inf])
    sweep = M.cascade_sweep(s1c, s2c, qcc, qsc, ccc, csc, t1_grid=g1, t2_grid=M.threshold_grid(s2c))
    by_share = [M.cascade_outcome(s1, s2, o.t1, o.t2, qc, qs, cc, cs) for o in M.frontier(sweep, "strong_share")]
    by_cost = [M.cascade_outcome(s1, s2, o.t1, o.t2, qc, qs, cc, cs) for o in M.frontier(sweep, "cost")]
    shares, quals = [o.strong_share for o in by_share], [o.quality for o in by_share]
    costs, cquals = [o.cost for o in by_cost], [o.quality for o in by_cost]
    q_c, q_s = float(np.mean(qc)), float(np.mean(qs))
    cost95 = M.curve_cost_at_quality(np.r_[costs, cc.sum(), cs.sum()], np.r_[cquals, q_c, q_s], 0.95 * q_s)
    return [name, M.curve_apgr(shares, quals, q_c, q_s), M.curve_cpt(shares, quals, q_c, q_s, 0.5),
            M.curve_cpt(shares, quals, q_c, q_s, 0.8), 100 * cost95 / cs.sum(),
            M.aiq(np.r_[costs, cc.sum(), cs.sum()], np.r_[cquals, q_c, q_s])]


def pair_arrays(d: RoutingData, clf_scores: np.ndarray, chk_scores: np.ndarray | None) -> tuple:
    return (clf_scores, chk_scores, d.score_of(d.cheap), d.score_of(d.strong),
            d.cost_of(d.cheap), d.cost_of(d.strong))


def dataset_table(folder: Path, peers: dict, peer_limit: int | None) -> None:
    data = load_dataset(folder).with_pair()
    test, cal = data.split("test"), data.split("calibration")
    qc, qs = test.score_of(test.cheap), test.score_of(test.strong)
    cc, cs = test.cost_of(test.cheap), test.cost_of(test.strong)
    print(f"\n== {folder.name}: {test.cheap} -> {test.strong}; test n={len(test)} "
          f"(cheap {qc.mean():.3f}, strong {qs.mean():.3f}; always-strong ${cs.sum():.4f}, "
          f"always-cheap = {100 * cc.sum() / cs.sum():.1f}% of it)")
    names = ["default"] + (["mmlu-pro"] if folder.name == "mmlu_pro" else [])
    has_responses = (folder / "responses.parquet").exists()
    if has_responses:
        checker = classifiers.load_answer_checker("default")
        chk = {}
        for split_name, d in (("cal", cal), ("test", test)):
            answers = [a or "" for a in load_responses(folder, d, d.cheap)]
            chk[split_name] = checker.score(d.prompts, answers)
    rows = []
    for name in names:
        clf = classifiers.load_classifier(name)
        ours = clf.score(test.prompts)
        rows.append(router_row(f"ours: {name} classifier", ours, qc, qs, cc, cs))
        if has_responses:
            rows.append(cascade_row(f"ours: {name} classifier + checker",
                                    pair_arrays(cal, clf.score(cal.prompts), chk["cal"]),
                                    pair_arrays(test, ours, chk["test"])))
    if has_responses:
        inf_c, inf_t = np.full(len(cal), -1.0), np.full(len(test), -1.0)
        rows.append(cascade_row("ours: checker only (cheap first)", pair_arrays(cal, inf_c, chk["cal"]),
                                pair_arrays(test, inf_t, chk["test"])))
    idx = subsample(len(test), peer_limit)
    note = "" if len(idx) == len(test) else f" [subsample n={len(idx)}]"
    for name, fn in peers.items():
        scores = np.array([fn(test.prompts[i]) for i in idx])
        rows.append(router_row(name + note, scores, qc[idx], qs[idx], cc[idx], cs[idx]))
    rows.append(router_row("random (expected)", M.random_scores(len(test)), qc, qs, cc, cs))
    rows.append(router_row("oracle", M.oracle_scores(qc, qs), qc, qs, cc, cs))
    print_table(rows)


def print_table(rows: Sequence[list]) -> None:
    head = f"{'router':46s} {'APGR':>6s} {'CPT50%':>7s} {'CPT80%':>7s} {'cost@95%':>9s} {'AIQ':>6s}"
    print(head)
    print("-" * len(head))
    for name, a, c50, c80, c95, aiq in rows:
        print(f"{name:46s} {a:6.3f} {100 * c50:6.1f}% {100 * c80:6.1f}% {c95:8.1f}% {aiq:6.3f}")


def _p50_us(fn: Callable[[str], object], sample: list[str]) -> float:
    times = []
    for p in sample:
        t = time.perf_counter()
        fn(p)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def our_speed(prompts: list[str]) -> dict[str, float]:
    """One-prompt p50 (us, best of 3 passes over 400 prompts) and batch prompts/s (best of 5)."""
    clf = classifiers.load_classifier("default")
    sample = prompts[:400]
    for p in sample[:50]:
        clf.score_one(p)
    one = min(_p50_us(clf.score_one, sample) for _ in range(3))
    batch = prompts * max(1, 50_000 // max(len(prompts), 1))
    clf.score(batch[:1000])
    best = min(_timed(lambda: clf.score(batch)) for _ in range(5))
    return {"one_us": one, "batch_per_s": len(batch) / best, "batch_n": len(batch)}


def print_speed(ours: dict[str, float], peers: dict, prompts: list[str]) -> None:
    sample = prompts[:400]
    lengths = [len(p) for p in sample]
    print(f"\n== speed ({len(sample)} MMLU-Pro test prompts, median {statistics.median(lengths):.0f} chars; "
          f"1 process, {os.cpu_count()} cores on the machine)")
    print(f"one prompt p50: ours {ours['one_us']:.1f} us", end="")
    heur = peers.get("litellm heuristic")
    if heur is not None:
        theirs = _p50_us(heur, sample)
        print(f"; litellm heuristic {theirs:.1f} us ({theirs / ours['one_us']:.1f}x slower)", end="")
    print()
    print(f"batch: ours {ours['batch_per_s']:,.0f} prompts/s ({ours['batch_n']:.0f} prompts per call; "
          "features read the first 2048 + last 1024 bytes of longer prompts)")


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="*", default=[str(DATA_ROOT / d) for d in DATASETS])
    parser.add_argument("--peer-limit", type=int, default=None,
                        help="score at most N test prompts per data set with litellm's classifiers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args(argv)
    mmlu = load_dataset(Path(args.data[0])).with_pair().split("test")
    ours = our_speed(mmlu.prompts)  # before litellm is imported (its background threads add noise)
    peers = {} if args.no_peers else litellm_peers()
    for folder in map(Path, [] if args.speed_only else args.data):
        dataset_table(folder, peers, args.peer_limit)
    print_speed(ours, peers, mmlu.prompts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
