"""The leave-one-folder-out bench's core (benchmarks/bench_lofo.py) on a small slice of the shared data:
thresholds come from the other folders' calibration splits only, figures from the held-out test split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifiers.features import FeatureSpec, sparse_matrix, struct_matrix
from classifiers.linear import sigmoid
from tests.harness.benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
FOLDERS = ("mmlu_pro", "routellm_mmlu", "routerbench_subset", "llmrouter")
needs_data = pytest.mark.skipif(not all((DATA / f / "prompts.parquet").exists() for f in FOLDERS),
                                reason="shared data not present")
SPEC = FeatureSpec(bits=10, char_ngrams=(), word_ngrams=(1,), head=300, tail=100)


lofo = load_benchmark("bench_lofo")


@pytest.fixture(scope="module")
def slices():
    from classifiers.training.data import load_dataset
    out = {}
    for name in FOLDERS:
        d = load_dataset(DATA / name).with_pair()
        out[name] = d.subset(np.arange(len(d)) % max(1, len(d) // 900) == 0)   # ~900 prompts each
    return out


def tiny_fit(slices, fitted: list):
    """A small prompt classifier fitted on the named folders' train splits (records what it saw)."""
    from classifiers.training.fit import HeadTarget, StackFitter

    def fit(names):
        fitted.append(tuple(names))
        parts = [slices[n].split("train") for n in names]
        texts = [p for d in parts for p in d.prompts]
        gain = np.concatenate([d.score_of(d.strong) - d.score_of(d.cheap) for d in parts])
        hashed, dense = sparse_matrix(texts, SPEC), struct_matrix(texts, SPEC)
        every = np.ones(len(texts), dtype=bool)
        fitter = StackFitter(spec=SPEC, alpha=3.0, C=0.5, folds=2).fit(
            hashed, dense, every, (gain > 0).astype(int), {"gain": HeadTarget(gain, every)})
        return lambda prompts: sigmoid(fitter.reference_logits(sparse_matrix(list(prompts), SPEC),
                                                               struct_matrix(list(prompts), SPEC)))
    return fit


@needs_data
def test_every_fold_is_fitted_without_its_folder_and_reported(slices):
    fitted: list = []
    table = lofo.lofo_table(slices, tiny_fit(slices, fitted), 0.95, peers={}, wrappers={"shifted": lofo.by_kind})
    assert sorted(fitted) == sorted(tuple(n for n in FOLDERS if n != held) for held in FOLDERS)
    for held, rows in table.items():
        names = [name for name, _ in rows]
        assert names == [f"ours (refit without {held})", "  shifted", "oracle"]
        ours, best = rows[0][1], rows[2][1]
        if held in ("mmlu_pro", "routellm_mmlu"):       # multiple choice only: the same scores (the threshold
            assert rows[1][1].apgr == ours.apgr           # may move: it is chosen on the other folders)
        assert ours.n == best.n == len(slices[held].split("test"))
        assert best.quality_kept >= 1.0 and best.ok
        assert 0.0 <= ours.strong_share <= 1.0 and ours.cost_share <= 1.0 + 1e-9


@needs_data
def test_threshold_is_the_highest_reaching_the_target_on_the_other_calibration_splits(slices):
    others = [slices[n].split("calibration") for n in FOLDERS[1:]]
    rng = np.random.default_rng(3)
    cal = [(rng.random(len(d)), d) for d in others]
    t1 = lofo.calibrate_t1(cal, 0.96)
    kept = np.mean([lofo.routed(s, t1, d).quality_kept for s, d in cal])
    assert kept >= 0.96
    grid = lofo.candidates(np.concatenate([s for s, _ in cal]))
    higher = grid[grid > t1]
    assert higher.size                               # +inf (nothing strong) cannot reach 0.96 here
    assert np.mean([lofo.routed(s, higher.min(), d).quality_kept for s, d in cal]) < 0.96


@needs_data
def test_routed_figures_and_the_bar(slices):
    d = slices["mmlu_pro"].split("test")
    qc, qs = d.score_of(d.cheap), d.score_of(d.strong)
    cc, cs = d.cost_of(d.cheap), d.cost_of(d.strong)
    worst = lofo.routed(qc - qs, 0.5, d)             # sends exactly the prompts where strong is worse
    assert not worst.ok and worst.quality_kept < worst.random_at_share
    every = lofo.routed(np.ones(len(d)), 0.5, d)
    assert every.strong_share == 1.0 and every.quality_kept == pytest.approx(1.0)
    assert every.cost_share == pytest.approx(1.0) and every.random_at_cost == pytest.approx(1.0)
    none = lofo.routed(np.zeros(len(d)), 0.5, d)
    assert none.quality_kept == pytest.approx(qc.mean() / qs.mean()) == pytest.approx(none.random_at_share)
    assert none.cost_share == pytest.approx(cc.sum() / cs.sum())
    # random routing at a share x keeps q_cheap + x (q_strong - q_cheap): the mean over many random orders
    half = [lofo.routed(np.random.default_rng(s).random(len(d)), 0.5, d) for s in range(200)]
    share = np.mean([h.strong_share for h in half])
    assert np.mean([h.quality_kept for h in half]) == pytest.approx(
        (qc.mean() + share * (qs.mean() - qc.mean())) / qs.mean(), abs=0.004)
