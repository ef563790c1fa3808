"""Answer signals of the tree checker (table-driven)."""
from __future__ import annotations

import numpy as np
import pytest

from classifiers.signals import SIGNAL_NAMES, numbers_in, parse_options, signal_matrix, signal_row

MC = "A car goes 120 km in 2 h. Speed?\nOptions:\nA. 50 km/h\nB. 60 km/h\nC. 1.2 x 10^2 km/h\nD. none"
COL = {name: i for i, name in enumerate(SIGNAL_NAMES)}


def test_parse_options_takes_the_last_block():
    prompt = "Q1\nA. old\nB. older\n\nAnswer: A\n\nQ2\nA. new\nB. newer\nC. newest"
    assert parse_options(prompt) == {"A": "new", "B": "newer", "C": "newest"}
    assert parse_options("no options here") == {}


@pytest.mark.parametrize("text, numbers", [
    ("1,200 and -3.5 and .25", [1200.0, -3.5, 0.25]),
    ("6.02 x 10^23", [6.02e23]),
    ("3 \u00d7 10^{-2}", [0.03]),
    ("nothing", []),
    ("9" * 400, [float("9" * 400)]),
])
def test_numbers_in(text, numbers):
    assert numbers_in(text) == pytest.approx(numbers)


@pytest.mark.parametrize("answer, expected", [
    # computes 60, picks B whose number is 60: consistent
    ("120 / 2 = 60 km/h. The answer is (B).",
     {"chosen_is_option": 1, "chosen_text_in_answer": 1, "chosen_number_in_answer": 1,
      "last_number_matches_chosen": 1, "last_number_matches_any": 1}),
    # computes 60 but picks A (50): the chosen number is nowhere in the reasoning
    ("120 / 2 = 60 km/h, closest is A. The answer is (A).",
     {"chosen_is_option": 1, "chosen_number_in_answer": 0, "last_number_matches_chosen": 0,
      "last_number_matches_any": 1, "lex_closest": np.log1p(1)}),
    # computes 55: matches no option; "however" and "approximately" are counted
    ("However, roughly 120 / 2.18 = 55. Approximately B. The answer is (B).",
     {"last_number_matches_any": 0, "lex_however": np.log1p(1), "lex_approx": np.log1p(2)}),
    # no extractable choice: the consistency columns are missing (-1)
    ("I think 60.", {"chosen_is_option": -1, "chosen_number_in_answer": -1}),
    # scientific notation in the option: 120 = 1.2 x 10^2
    ("Speed = 120 km/h. The answer is (C).", {"chosen_number_in_answer": 1, "last_number_matches_chosen": 1}),
])
def test_signal_row(answer, expected):
    row = signal_row(MC, answer)
    assert len(row) == len(SIGNAL_NAMES)
    for name, value in expected.items():
        assert row[COL[name]] == pytest.approx(value), name


def test_signal_matrix_is_deterministic_and_total():
    prompts = [MC, "", "open question", MC]
    answers = ["The answer is (B).", "", "\ud800 odd", "x" * 50_000]
    m = signal_matrix(prompts, answers)
    assert m.shape == (4, len(SIGNAL_NAMES)) and np.all(np.isfinite(m))
    assert np.array_equal(m, signal_matrix(prompts, answers))
