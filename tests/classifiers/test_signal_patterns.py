"""The signal patterns written for speed find exactly what the patterns they stand for find (drawn texts
with unicode digits, case-folding letters and line breaks; every recorded MMLU-Pro answer)."""
from __future__ import annotations

import re

import numpy as np
from hypothesis import given, settings, strategies as st

from classifiers import signals

# the patterns as first written (readable, slower: ``re`` tries them at every character)
REF_NUMBER = re.compile(r"(-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+)(?:\s*[x\u00d7]\s*10\^?\{?(-?\d+)\}?)?")
REF_FINAL = re.compile(r"(?i:the answer is|answer\s*:)")
REF_MENTION = re.compile(r"(?:\(([A-J])\)|\b(?:option|choice)\s+\(?([A-J])\b|^\s*([A-J])[.)]\s)", re.MULTILINE)

PIECES = st.sampled_from([
    "the answer is", "THE ANSWER IS", "The Answer iſ", "answer:", "Answer  :", "ANSWER\n:", "anſwer is", "ınswer",
    "option", "choice", "Option (B)", "choice\nC", "options D", "ochoice E", "xoption F", "(A)", "(J)", "(K)",
    "A.", "B)", "C. ", "D)\n", "\n", "\n\n", " ", "\t", "\x1c", "\u2028", "\u00a0", "-", ".", "-.", "..", "1", "23",
    ",", ",000", "1,234.5", "12,34", " x 10^", "\u00d7 10^{", "10", "}", "^", "{", "e", "\u0663", "\u00b2",
    "\u00bd", "\u0130", "\u0131", "\u00df", "\u00e9", "word", "o", "c", "_",
])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=40).map("".join)


def mentions(text: str) -> set[str]:
    return {a or b or c for a, b, c in REF_MENTION.findall(text)}


@settings(max_examples=1500, deadline=None)
@given(TEXTS)
def test_number_pattern_equals_the_reference(text):
    assert signals._NUMBER.findall(text) == REF_NUMBER.findall(text)


@settings(max_examples=1500, deadline=None)
@given(TEXTS)
def test_final_pattern_equals_the_reference(text):
    assert [m.span() for m in signals._FINAL.finditer(text)] == [m.span() for m in REF_FINAL.finditer(text)]


@settings(max_examples=1500, deadline=None)
@given(TEXTS)
def test_letters_mentioned_equal_the_reference(text):
    assert signals.letters_mentioned(text) == mentions(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Q?\nA. 1\nB. 2,000\nC. 3 x 10^2", "Q\n(A) x\n(B) y", "open"]), TEXTS),
                max_size=8))
def test_signal_matrix_equals_rows(pairs):
    """The batch (options parsed once per distinct prompt) gives each pair's own row."""
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    expected = np.array([signals.signal_row(p, a) for p, a in pairs]).reshape(len(pairs), len(signals.SIGNAL_NAMES))
    assert np.array_equal(signals.signal_matrix(prompts, answers), expected)


def test_patterns_on_recorded_answers(data_root):
    import pyarrow.parquet as pq
    answers = [t for t in pq.read_table(data_root / "mmlu_pro" / "responses.parquet").column("response").to_pylist() if t]
    for text in answers[::3]:
        tail = text[-signals._TAIL:]
        assert signals._NUMBER.findall(tail) == REF_NUMBER.findall(tail)
        assert [m.start() for m in signals._FINAL.finditer(tail)] == [m.start() for m in REF_FINAL.finditer(tail)]
        assert signals.letters_mentioned(tail) == mentions(tail)
