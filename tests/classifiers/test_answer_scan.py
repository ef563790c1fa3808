"""The checker's fast scans (classifiers.answer_scan) equal the pattern searches they stand for: on drawn
texts (ASCII and not, case-folding letters, cue words next to each other) and on every recorded MMLU-Pro
answer."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from classifiers import answer_scan, rules, signals

PIECES = st.sampled_from([
    "the answer is", "The answer is", "THE ANSWER IS", "the answer is:", "answer is (", "Answer: ", "answer  :",
    "ANSWER\n:", "answer", "answeranswer", "the answer", "tthe answer is", "anſwer is", "The Answer iſ", "\u0130",
    "\u0131", "option", "choice", "Option (B)", "option C", "xoption F", "ochoice E", "optionoption ", "choice (",
    "(A)", "(J)", "(K)", "A", "B.", "C)", "J", "K", "**", "*", "(", ":", " ", "\n", "\t", "\x1c", "\u2028",
    "I'm sorry, but I can't", "I am unable to help", "I cannot help", "As an AI language model, I cannot",
    "i'M SoRRy, BuT i CaN't", "\u0130'm sorry, but I can't", "as an A\u0130, I don't", "I can", "sorry", "x", "é",
])
TEXTS = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=40).map("".join)


def last_final(text: str) -> int | None:
    found = None
    for found in signals._FINAL.finditer(text):
        pass
    return found.start() if found is not None else None


def check_equal(text: str) -> None:
    assert answer_scan.choice_and_letters(text) == (rules.extract_choice(text), rules.answer_letters(text))
    assert answer_scan.is_refusal(text) == rules.is_refusal(text)
    assert answer_scan.last_start(signals._FINAL, text, "answer", 4) == last_final(text)
    assert answer_scan.word_matches(signals._MENTION_WORD, text, ("option", "choice")) == \
        signals._MENTION_WORD.findall(text)


@settings(max_examples=3000, deadline=None)
@given(TEXTS)
def test_scans_equal_the_patterns_on_drawn_texts(text):
    check_equal(text)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(min_value=0, max_value=5000))
def test_scans_equal_the_patterns_past_the_tail_windows(text, pad):
    """Cues cut by the 400 / 4,000 / 6,000-character windows."""
    check_equal("x" * pad + text)
    check_equal(text + "y" * pad + text)


def test_scans_equal_the_patterns_on_recorded_answers(data_root):
    import pyarrow.parquet as pq
    answers = [t for t in pq.read_table(data_root / "mmlu_pro" / "responses.parquet").column("response").to_pylist() if t]
    assert len(answers) > 40_000
    for text in answers[::2]:
        check_equal(text)
        check_equal(text[-signals._TAIL:])


def test_unread_lexicon_columns_leave_the_scores_unchanged(data_root):
    """The shipped tree checker skips the lexicon signals no split reads; its scores equal the scores over
    every column computed."""
    import pyarrow.parquet as pq
    from classifiers import load_answer_checker
    checker = load_answer_checker("default")
    assert checker.unread_signals and all(s.startswith("lex_") for s in checker.unread_signals)
    prompts = dict(zip(*pq.read_table(data_root / "mmlu_pro" / "prompts.parquet", columns=["prompt_id", "prompt"])
                       .to_pydict().values()))
    rows = pq.read_table(data_root / "mmlu_pro" / "responses.parquet").to_pylist()[::7]
    pairs = [(prompts[r["prompt_id"]], r["response"]) for r in rows if r["response"]]
    p, a = [x for x, _ in pairs], [y for _, y in pairs]
    extra = checker.inputs(p, a)
    assert np.array_equal(checker.inputs(p, a, scans=[answer_scan.choice_and_letters(x) for x in a]), extra)
    full = np.hstack([extra[:, :-len(signals.SIGNAL_NAMES)], signals.signal_matrix(p, a)])
    assert not np.array_equal(extra, full)                      # the skipped columns were not all zero
    assert np.array_equal(checker.trees.raw(extra), checker.trees.raw(full))
