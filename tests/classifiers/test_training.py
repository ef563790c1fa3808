"""Training round trip (sklearn fit -> artifact -> numpy-only scorer), splits, features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import classifiers
from classifiers import splits
from classifiers.artifact import read_scorer
from classifiers.features import Batch, FeatureSpec, Single, sparse_matrix, struct_matrix
from classifiers.linear import LinearStack, sigmoid

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "mmlu_pro").exists(), reason="shared data not present")
SPEC = FeatureSpec(bits=12, char_ngrams=(3, 5), word_ngrams=(1, 2), head=300, tail=100)


@pytest.fixture(scope="module")
def mmlu_slice():
    from classifiers.training.data import load_dataset
    data = load_dataset(DATA / "mmlu_pro").with_pair()
    return data.subset(np.arange(len(data)) % 25 == 0)  # ~430 prompts


@needs_data
def test_round_trip_matches_sklearn(mmlu_slice, tmp_path):
    from classifiers.artifact import write_artifact
    from classifiers.training.fit import HeadTarget, StackFitter

    d = mmlu_slice
    qc, qs = d.score_of(d.cheap), d.score_of(d.strong)
    tokens = d.completion_tokens[:, d.col(d.cheap)]
    heads = {"gain": HeadTarget(qs - qc, np.ones(len(d), bool)),
             "tokens": HeadTarget(np.log1p(np.nan_to_num(tokens)), np.isfinite(tokens))}
    hashed, dense = sparse_matrix(d.prompts, SPEC), struct_matrix(d.prompts, SPEC)
    train = np.arange(len(d)) % 3 != 0
    fitter = StackFitter(spec=SPEC, alpha=3.0, C=0.5, folds=2).fit(
        hashed, dense, train, (qs > qc).astype(int), heads)
    meta, arrays = fitter.stack_.to_artifact()
    path = write_artifact(tmp_path / "tiny", {**meta, "kind": "classifier", "name": "tiny"}, arrays)
    loaded = classifiers.load_classifier(str(path))
    expected = sigmoid(fitter.reference_logits(hashed, dense))
    assert np.max(np.abs(loaded.score(d.prompts) - expected)) < 1e-9
    for i in range(0, len(d), 40):
        assert abs(loaded.score_one(d.prompts[i]) - expected[i]) < 1e-9
    assert loaded.name == "tiny"


def test_stack_rejects_bad_shapes():
    spec = FeatureSpec(bits=8)
    ok = dict(spec=spec, table=np.zeros(256), struct_coef=np.zeros(3), struct_mean=np.zeros(3),
              struct_scale=np.ones(3), bias=0.0)
    LinearStack(**ok)
    with pytest.raises(ValueError):
        LinearStack(**{**ok, "table": np.zeros(255)})
    with pytest.raises(ValueError):
        LinearStack(**{**ok, "struct_scale": np.zeros(3)})


TEXTS = ["", "a", "ab", "A. x", "\n(B) y", "(A) one\n(B) two\nC) three\nD. four", "A.\nB.\nC)",
         "x" * 5000, "ünï ✓ 数学", "\x00\x00A. z", "\ud800", " hello  world ", "12 34 56?",
         "Q?\nOptions:\nA. 1\nB. 2\nJ. 3\nK. 4", "line\n((A) no\n(A)no\nA.no"]


def test_single_and_batch_agree():
    spec = FeatureSpec(bits=10, head=64, tail=32)
    table = np.random.default_rng(0).normal(size=spec.n_buckets)
    batch = Batch(TEXTS, spec)
    sums, struct = batch.hashed_sum(table), batch.struct()
    for i, text in enumerate(TEXTS):
        single = Single(text, spec)
        assert single.hashed_sum(table)[0] == pytest.approx(sums[i], abs=1e-12)
        assert np.allclose(single.struct()[0], struct[i], rtol=0, atol=1e-12)
    # the sparse training matrix is the same linear map
    assert np.allclose(sparse_matrix(TEXTS, spec) @ table, sums, atol=1e-12)


def test_option_detection():
    spec = FeatureSpec()
    s = struct_matrix(TEXTS, spec)
    options = dict(zip(TEXTS, s[:, 2]))
    assert options["A. x"] == 1 and options["\n(B) y"] == 1
    assert options["(A) one\n(B) two\nC) three\nD. four"] == 4
    assert options["A.\nB.\nC)"] == 3
    assert options["Q?\nOptions:\nA. 1\nB. 2\nJ. 3\nK. 4"] == 3
    assert options["line\n((A) no\n(A)no\nA.no"] == 0


def test_hashes_do_not_depend_on_the_process():
    import subprocess
    import sys
    code = ("from classifiers.features import *; import numpy as np; "
            "print(sparse_matrix(['hash me, please'], FeatureSpec(bits=12)).indices.tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1


def test_splits_are_deterministic_and_proportioned():
    prompts = [f"prompt number {i}" for i in range(20000)]
    names = splits.split_array(prompts)
    share = {s: float(np.mean(names == s)) for s in splits.SPLITS}
    assert share["train"] == pytest.approx(0.70, abs=0.015)
    assert share["calibration"] == pytest.approx(0.15, abs=0.01)
    assert share["test"] == pytest.approx(0.15, abs=0.01)
    assert splits.split_of("  a   b ") == splits.split_of("a b")  # whitespace-normalised
    assert splits.split_of("What is 2+2?") == "train"  # pinned: the split must never change
    assert splits.split_mask(["x", "y"], "train", "test").dtype == bool
    with pytest.raises(ValueError):
        splits.split_mask(["x"], "dev")


def test_shipped_artifacts_are_small_and_described():
    art = classifiers.ARTIFACTS_DIR
    total = sum(p.stat().st_size for p in art.iterdir())
    assert total < 4_000_000
    card = (art / "MODEL_CARD.md").read_text()
    assert "test" in card.lower() and "python -m classifiers.training.train" in card
    for path, kind in ((classifiers.DEFAULT_CLASSIFIER, "classifier"),
                       (classifiers.MMLU_PRO_CLASSIFIER, "classifier"),
                       (classifiers.DEFAULT_ANSWER_CHECKER, "answer_checker")):
        assert read_scorer(path, kind) is not None


@needs_data
def test_training_only_head_targets(mmlu_slice):
    """The difficulty head's target is the centred mean score of the models outside the pair; the
    task head's is its task's mean gain over the training rows."""
    from classifiers.training.train import PairSet, _classifier_heads, difficulty_target

    d = mmlu_slice
    ps = PairSet(DATA / "mmlu_pro", d, d.cheap, d.strong)
    target = difficulty_target([ps])
    others = [j for j, m in enumerate(d.models) if m not in (d.cheap, d.strong)]
    expect = np.nanmean(d.scores[:, others], axis=1)
    assert target.mask.all() and len(others) == 29
    assert np.allclose(target.values, expect - expect.mean())
    gain = d.score_of(d.strong) - d.score_of(d.cheap)
    heads = _classifier_heads([ps], np.zeros(len(d), int), gain, gated=True, groups=("task", "pair_scores"))
    assert set(heads) == {"gain", "task_gain", "cheap_score", "strong_score"}
    train = d.split_names() == "train"
    law = (d.tasks == "mmlu-pro/law")
    assert np.allclose(heads["task_gain"].values[law], gain[law & train].mean())


def test_an_adapted_checker_scores_a_rule_failure_as_the_shipped_checker_does():
    """Fitted on choice answers only, it still judges and fails a numeric answer that states no number and
    an output prediction that states no output (score 1.0), and keeps its own score elsewhere."""
    from classifiers.training.adapt import fit_adapted_checker
    rng = np.random.default_rng(0)
    prompts, answers, bad = [], [], []
    for i in range(60):
        right = bool(rng.integers(2))
        prompts.append(f"Question {i}: which is larger?\nOptions:\nA. {i}\nB. {i + 1}\nAnswer with the letter.")
        answers.append(("B is larger, so the answer is (B)." if right else "Hard to say; the answer is (A).")
                       + " " + "reasoning " * int(rng.integers(20, 40)))
        bad.append(not right)
    checker, report = fit_adapted_checker(prompts, answers, np.array(bad))
    assert report["judges_kinds"] == ["choice"]
    number_q = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
    output_q = "def f(x):\n    return x * 2\nassert f(3) == ??\nWhat is the output of f(3)?"
    cases = [(number_q, "He has some apples, more than before."), (output_q, "It doubles its argument.")]
    for prompt, answer in cases:
        assert checker.judges(prompt, answer)
        assert checker.score_one(prompt, answer) == 1.0
    assert not checker.judges(number_q, "Tom has 7 apples.")          # a stated number: not its kind
    assert checker.score_one(prompts[0], answers[0]) < 1.0
