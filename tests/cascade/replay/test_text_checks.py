"""The rule checks run over many texts at once (cascade.replay.textchecks) give exactly the per-answer
callables' outcomes and reasons: drawn texts (unicode whitespace, case folding, refusals, empty strings,
a lone surrogate) and every recorded answer of the shared data."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from cascade.replay.textchecks import TEXT_ONLY, VECTORISED, run_text_check, vectorised_pass
from policies.checks import Answer, build_check

CHECKS = [("non_empty", {}), ("min_chars", {"n": 0}), ("min_chars", {"n": 1}), ("min_chars", {"n": 7}),
          ("no_refusal", {}), ("answer_format", {"pattern": r"answer is \(?[A-J]"}), ("valid_json", {})]
PIECES = st.sampled_from([
    "", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u1680", "\u2003", "\u2028",
    "\u3000", "\u200b", "\ufeff", "I'm sorry", "i\u2019m sorry, but", "Sorry, I can't help", "I cannot assist",
    "I won't answer", "I am unable to provide", "As an AI language model, I can't", "as an ai i cannot", "...",
    "\u2014 ", "I\u0307", "\u017fORRY", "\u212a", "\u00e9", "\u4e2d\u6587", "\U0001f600", "answer is (B)", "x",
    "{\"a\": 1}", "```json\n[1]\n```", "abc", "The answer is C.",
])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=12).map("".join)


def assert_like_callables(name: str, params: dict, texts: list[str]) -> None:
    check = build_check(name, params)
    passed, reasons = run_text_check(name, params, check, texts)
    for k, text in enumerate(texts):
        out = check(Answer(prompt="", text=text))
        assert bool(passed[k]) == out.passed, (name, params, text)
        assert reasons.get(k, "") == ("" if out.passed else out.reason), (name, params, text)


def test_the_vectorised_checks_read_the_text_alone():
    assert VECTORISED <= TEXT_ONLY
    assert "custom" not in TEXT_ONLY and "agreement" not in TEXT_ONLY and "answer_checker" not in TEXT_ONLY


@pytest.mark.parametrize("name, params", CHECKS)
@settings(max_examples=200, deadline=None)
@given(texts=st.lists(TEXTS, max_size=16))
def test_equals_the_callables_on_drawn_texts(name, params, texts):
    assert_like_callables(name, params, texts)


@pytest.mark.parametrize("name, params", [c for c in CHECKS if c[0] in VECTORISED])
def test_edge_texts(name, params):
    texts = ["", " ", "\u3000", "\x1c\x1d", "a", " a ", "I'm sorry, I can't help", "  --I cannot help",
             "x" * 199 + " I cannot help", "\u00e9t\u00e9", "\ud800 lone surrogate"]
    assert_like_callables(name, params, texts)
    assert_like_callables(name, params, texts[:-1])            # without the surrogate: the Arrow path


@pytest.mark.parametrize("folder", ["mmlu_pro", "routerbench_subset"])
def test_equals_the_callables_on_recorded_answers(data_root, folder):
    """On real answers, and the vectorised path decides every ASCII text itself (no call left over)."""
    import pyarrow.parquet as pq
    texts = [t for t in pq.read_table(data_root / folder / "responses.parquet").column("response").to_pylist()
             if t is not None][::4]
    texts += ["", "I'm sorry, but I can't help with that."]
    for name, params in CHECKS:
        assert_like_callables(name, params, texts)
        if name in VECTORISED:
            fast = vectorised_pass(name, params, texts)
            ascii_only = np.array([t.isascii() for t in texts])
            expected = np.array([build_check(name, params)(Answer(prompt="", text=t)).passed for t in texts])
            assert np.array_equal(fast[ascii_only], expected[ascii_only])
            assert not fast[~ascii_only].any()
