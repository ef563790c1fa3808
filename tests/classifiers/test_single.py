"""The single-text featuriser (the per-request path) computes what the batch featuriser (training) does.

The two are written independently (option lines: a regular expression vs. whole-array comparisons;
byte categories: ``bytes.count`` vs. ``np.bincount``; word hashing: one combined pass vs. one pass per
kind), so texts are drawn from the characters where they could part: option letters and their
punctuation, line breaks, NUL, digits, upper case, non-ASCII and lone surrogates, at lengths on both
sides of the clipping limit.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from classifiers.features import Batch, FeatureSpec
from classifiers.single import Single, options_of

SPECS = [FeatureSpec(bits=12, char_ngrams=(), head=60, tail=30),           # the shipped kinds, short clip
         FeatureSpec(bits=10, char_ngrams=(3, 5), word_ngrams=(2,), head=40, tail=0),
         FeatureSpec(bits=10, char_ngrams=(4,), word_ngrams=(1,), head=0, tail=25)]
PIECES = ["A", "B", "J", "K", "a", "(", ")", ".", " ", "\n", "\r", "\t", "\x00", "?", "0", "7", "=", "{",
          "word", "Zz", "é", "数", "\U0001f600", "\ud800", "A. ", "\n(B) ", "\nC)", "\nJ.\n"]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=2, max_size=4))
def test_single_equals_batch(batch_texts):
    for spec in SPECS:
        table = np.random.default_rng(spec.bits).normal(size=spec.n_buckets)
        batch = Batch(batch_texts, spec)
        sums, struct = batch.hashed_sum(table), batch.struct()
        for i, text in enumerate(batch_texts):
            single = Single(text, spec)
            assert single.hashed_total(table) == pytest.approx(sums[i], abs=1e-12)
            assert np.allclose(single.struct_list(), struct[i], rtol=0, atol=1e-12), (spec, text)


# expected values as the line-by-line parser this replaced gave them
@pytest.mark.parametrize(("text", "expected"), [
    (b"", (0, 0)), (b"A.", (1, 0)), (b"A. x", (1, 0)), (b"(A) x", (1, 1)), (b"x\nB)\x00", (1, 2)),
    (b"x\nA.y\n(B)\r\nC.\tz", (0, 15)), (b"((A) no\n K. no\nA.\nB.\nJ) j", (3, 15)), (b"x\n\nA. y", (1, 3)),
])
def test_option_lines(text, expected):
    assert options_of(text) == expected
