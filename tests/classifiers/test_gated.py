"""The option-gated prompt classifier: one pass over stacked expert tables equals each expert."""
from __future__ import annotations

import numpy as np
import pytest

import classifiers
from classifiers.artifact import write_artifact
from classifiers.features import Batch, FeatureSpec
from classifiers.gated import GatedLinearClassifier, OptionGate
from classifiers.linear import LinearClassifier, LinearStack

SPEC = FeatureSpec(bits=10, char_ngrams=(3,), word_ngrams=(1, 2), head=200, tail=100)
TEXTS = ["", "hi", "Q?\nA. 1\nB. 2", "Pick.\n" + "\n".join(f"{c}. opt {c}" for c in "ABCDEFGHIJ"),
         "(A) x\n(B) y\n(C) z\n(D) w\n(E) v\n(F) u", "long " * 500, "\u00fcn\u00ef 2+2=?", "\ud800"]


def _stack(seed: int) -> LinearStack:
    rng = np.random.default_rng(seed)
    return LinearStack(spec=SPEC, table=rng.normal(size=SPEC.n_buckets), struct_coef=rng.normal(size=13),
                       struct_mean=rng.normal(size=13), struct_scale=rng.uniform(0.5, 2, size=13),
                       bias=float(rng.normal()))


def test_hashed_sum_with_offsets_reads_each_texts_table():
    tables = np.random.default_rng(0).normal(size=(2, SPEC.n_buckets))
    which = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    batch = Batch(TEXTS, SPEC)
    mixed = batch.hashed_sum(tables.ravel(), which * SPEC.n_buckets)
    expect = np.where(which == 1, batch.hashed_sum(tables[1]), batch.hashed_sum(tables[0]))
    assert np.allclose(mixed, expect, rtol=0, atol=1e-12)


def test_gated_equals_its_experts_and_round_trips(tmp_path):
    experts = [_stack(1), _stack(2)]
    gated = GatedLinearClassifier(experts, OptionGate(6, 11), name="gated-test")
    scores = gated.score(TEXTS)
    singles = [LinearClassifier(s) for s in experts]
    expect = np.array([singles[1 if i in (3, 4) else 0].score_one(t) for i, t in enumerate(TEXTS)])
    assert np.allclose(scores, expect, rtol=0, atol=1e-12)  # only texts 3 (10 options) and 4 (6) pass
    for text, s in zip(TEXTS, scores):
        assert gated.score_one(text) == pytest.approx(s, abs=1e-12)
    meta, arrays = gated.to_artifact()
    path = write_artifact(tmp_path / "gated", {**meta, "kind": "classifier", "name": "g"}, arrays)
    loaded = classifiers.load_classifier(str(path))
    assert isinstance(loaded, GatedLinearClassifier) and loaded.gate == OptionGate(6, 11)
    assert np.array_equal(loaded.score(TEXTS), scores)


def test_gated_rejects_mismatched_experts():
    other = LinearStack(spec=FeatureSpec(bits=8), table=np.zeros(256), struct_coef=np.zeros(13),
                        struct_mean=np.zeros(13), struct_scale=np.ones(13), bias=0.0)
    with pytest.raises(ValueError):
        GatedLinearClassifier([_stack(1), other], OptionGate(6, 11))
    with pytest.raises(ValueError):
        GatedLinearClassifier([_stack(1)], OptionGate(6, 11))
