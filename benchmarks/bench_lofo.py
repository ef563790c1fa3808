"""Leave-one-folder-out routing: how the prompt classifier does on traffic it was never fitted on.

    python benchmarks/bench_lofo.py [--target 0.95] [--weighting balanced] [--peer-limit 300] [--cache DIR]

For each of the four outcome folders (its natural cheap -> strong pair): refit the prompt classifier
(:func:`classifiers.training.train.train_classifier`, the shipped recipe) on the TRAIN splits of the
other three folders, weighted so that no folder dominates (``--weighting balanced``; ``none`` is the
shipped artifact's choice); choose the threshold t1 on the other three folders' CALIBRATION splits (the
highest t1 whose mean share of always-strong quality, each folder weighted equally, reaches
``--target``); then measure the held-out folder's TEST split at that t1. The same threshold rule
serves litellm's two classifiers (they are not refitted: they were never fitted on this data).

A second row shifts our score per prompt kind as the default policy's ``by-kind`` classifier does
(:mod:`classifiers.by_kind`; same threshold rule).
Columns: quality kept (% of always-strong), cost (% of always-strong), strong share, random routing's
quality at the same strong share and at the same cost, APGR (threshold-free ranking quality) and the
verdict of the bar: never below random at the same share, never dearer than always-strong.
Costs as in bench_routing (cost_usd where the folder has it, else tokens x list prices).
The answer checker is not part of this table: two of the four folders have no answer texts, and
where they exist the shipped checker abstains outside multiple-choice answers (see the README).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifiers import metrics as M  # noqa: E402
from classifiers.training.data import RoutingData, load_dataset  # noqa: E402

DATA_ROOT = Path(os.environ.get("CASCADE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDERS = ("mmlu_pro", "routellm_mmlu", "routerbench_subset", "llmrouter")
Scorer = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Outcome:
    """Routing ``scores >= t1`` to the strong model on one data set."""

    n: int
    t1: float
    quality_kept: float      # share of always-strong quality
    cost_share: float        # cost as a share of always-strong's
    strong_share: float
    random_at_share: float   # random routing's quality kept at the same strong share
    random_at_cost: float    # ... at the same cost
    apgr: float

    @property
    def ok(self) -> bool:
        """The bar: never below random at the same strong share, never dearer than always-strong."""
        return self.quality_kept >= self.random_at_share - 1e-9 and self.cost_share <= 1.0 + 1e-9


def pair(d: RoutingData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(quality cheap, quality strong, cost cheap, cost strong) of the folder's natural pair."""
    return d.score_of(d.cheap), d.score_of(d.strong), d.cost_of(d.cheap), d.cost_of(d.strong)


def routed(scores: np.ndarray, t1: float, d: RoutingData) -> Outcome:
    """The figures of routing ``scores >= t1`` to the strong model on ``d``."""
    qc, qs, cc, cs = pair(d)
    strong = np.asarray(scores) >= t1
    share = float(strong.mean())
    q_c, q_s, c_c, c_s = float(qc.mean()), float(qs.mean()), float(cc.sum()), float(cs.sum())
    quality = float(np.where(strong, qs, qc).mean())
    cost = float(np.where(strong, cs, cc).sum())
    at_cost = float(np.clip((cost - c_c) / (c_s - c_c), 0.0, 1.0)) if c_s > c_c else 0.0
    return Outcome(n=len(d), t1=float(t1), quality_kept=quality / q_s, cost_share=cost / c_s, strong_share=share,
                   random_at_share=(q_c + share * (q_s - q_c)) / q_s,
                   random_at_cost=(q_c + at_cost * (q_s - q_c)) / q_s, apgr=float(M.apgr(scores, qc, qs)))


def candidates(pooled: np.ndarray) -> np.ndarray:
    """The thresholds tried: 201 quantiles of the pooled calibration scores and +inf (nothing strong)."""
    return np.unique(np.r_[np.quantile(pooled, np.linspace(0, 1, 201)), np.inf])


def calibrate_t1(cal: Sequence[tuple[np.ndarray, RoutingData]], target: float) -> float:
    """The highest threshold whose mean (each data set weighted equally) share of always-strong quality
    on the calibration sets reaches ``target``; -inf (everything strong) when none does."""
    for t in candidates(np.concatenate([np.asarray(s, dtype=np.float64) for s, _ in cal]))[::-1]:                                   # highest (cheapest) first
        kept = [routed(s, t, d).quality_kept for s, d in cal]
        if float(np.mean(kept)) >= target - 1e-12:
            return float(t)
    return float("-inf")


def lofo_fold(test: RoutingData, calibration: Sequence[RoutingData], scorer: Scorer, target: float) -> Outcome:
    """One fold: t1 chosen on the ``calibration`` sets (the other folders' calibration splits), figures
    on ``test`` (the held-out folder's test split). ``scorer`` must not have been fitted on ``test``'s folder."""
    t1 = calibrate_t1([(np.asarray(scorer(c.prompts)), c) for c in calibration], target)
    return routed(np.asarray(scorer(test.prompts)), t1, test)


def oracle(d: RoutingData) -> Outcome:
    qc, qs, _, _ = pair(d)
    return routed(M.oracle_scores(qc, qs), 0.5, d)


def fit_fold(train_folders: Sequence[Path], out: Path, weighting: str) -> Scorer:
    """Refit the shipped classifier recipe on ``train_folders`` (cached at ``out``); its scorer."""
    from classifiers.artifact import read_scorer
    from classifiers.training.train import train_classifier

    if not out.with_suffix(".json").exists():
        train_classifier([str(f) for f in train_folders], out=out, weightings=(weighting,), name=out.name)
    clf = read_scorer(out.with_suffix(".json"), "classifier", out.name)
    return lambda texts: np.asarray(clf.score(list(texts)))


def subsampled(d: RoutingData, limit: int | None) -> RoutingData:
    if limit is None or len(d) <= limit:
        return d
    keep = np.zeros(len(d), dtype=bool)
    keep[np.unique(np.linspace(0, len(d) - 1, limit).round().astype(int))] = True
    return d.subset(keep)


def peer_scorers() -> dict[str, Scorer]:
    from benchmarks.bench_routing import litellm_peers
    return {name: (lambda fn: lambda texts: np.array([fn(t) for t in texts]))(fn)
            for name, fn in litellm_peers().items()}


def print_rows(title: str, rows: Sequence[tuple[str, Outcome]]) -> None:
    print(f"\n== held out: {title}")
    head = (f"{'router':40s} {'t1':>6s} {'quality':>8s} {'cost':>7s} {'strong':>7s} {'rnd@share':>10s} "
            f"{'rnd@cost':>9s} {'APGR':>6s}  verdict")
    print(head)
    print("-" * len(head))
    for name, o in rows:
        print(f"{name:40s} {o.t1:6.3f} {o.quality_kept:8.1%} {o.cost_share:7.1%} {o.strong_share:7.1%} "
              f"{o.random_at_share:10.1%} {o.random_at_cost:9.1%} {o.apgr:6.3f}  "
              f"{'ok' if o.ok else 'BELOW RANDOM OR DEARER'}")


def by_kind(scorer: Scorer) -> Scorer:
    """``scorer`` shifted per prompt kind as the ``by-kind`` classifier shifts ``default``."""
    from classifiers.by_kind import KindShiftedClassifier

    class _Base:
        def score(self, texts: Sequence[str]) -> np.ndarray:
            return np.asarray(scorer(texts))
    return KindShiftedClassifier(_Base()).score


def lofo_table(data: dict[str, RoutingData], fit: Callable[[Sequence[str]], Scorer], target: float,
               peers: dict[str, Scorer], peer_limit: int | None = None,
               show: Callable[[str, list[tuple[str, Outcome]]], None] | None = None,
               wrappers: dict[str, Callable[[Scorer], Scorer]] | None = None) -> dict[str, list[tuple[str, Outcome]]]:
    """Every fold: ``fit(names of the other folders)`` -> our scorer (and each of ``wrappers`` around it);
    t1 on their calibration splits; figures on the held-out folder's test split, beside the peers (t1 by
    the same rule) and the oracle."""
    table = {}
    for held in data:
        others = [name for name in data if name != held]
        cal, test = [data[o].split("calibration") for o in others], data[held].split("test")
        ours = fit(others)
        rows = [(f"ours (refit without {held})", lofo_fold(test, cal, ours, target))]
        rows += [(f"  {name}", lofo_fold(test, cal, wrap(ours), target)) for name, wrap in (wrappers or {}).items()]
        note = "" if peer_limit is None else f" [n<={peer_limit}]"
        for name, fn in peers.items():
            small = [subsampled(c, peer_limit) for c in cal]
            rows.append((name + note, lofo_fold(subsampled(test, peer_limit), small, fn, target)))
        rows.append(("oracle", oracle(test)))
        table[held] = rows
        if show is not None:
            show(f"{held} (test split; fitted and calibrated on the other three)", rows)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="*", default=[str(DATA_ROOT / f) for f in FOLDERS])
    parser.add_argument("--target", type=float, default=0.95, help="mean share of always-strong quality on calibration")
    parser.add_argument("--weighting", default="balanced", choices=("balanced", "none"))
    parser.add_argument("--peer-limit", type=int, default=300, help="prompts per split scored by litellm's classifiers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--cache", default=None, help="directory keeping the refitted classifiers between runs")
    args = parser.parse_args(argv)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="lofo-"))
    cache.mkdir(parents=True, exist_ok=True)
    peers = {} if args.no_peers else peer_scorers()
    folders = {Path(f).name: Path(f) for f in args.data}
    data = {name: load_dataset(path).with_pair() for name, path in folders.items()}

    def fit(others: Sequence[str]) -> Scorer:
        held = next(name for name in folders if name not in others)
        return fit_fold([folders[o] for o in others], cache / f"lofo-{args.weighting}-without-{held}", args.weighting)
    lofo_table(data, fit, args.target, peers, None if args.no_peers else args.peer_limit, show=print_rows,
               wrappers={"+ by-kind shift (the default policy's)": by_kind})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
