"""Answer signals for the answer checker: hedging words and whether the answer agrees with itself.

Pure Python (``re``) and numpy, no training state. For one (prompt, answer) pair, the columns of
:data:`SIGNAL_NAMES`:

* lexicon counts (log1p of the number of hits in the answer) of hedging and self-correction
  words: "closest", "however", "assum...", "might", "slightly", "none of the", "approximately",
  "not listed / not among / not match", "re-evaluate / recheck / reconsider / mistake", "wait";
* option consistency, for a multiple-choice prompt whose options can be parsed
  ("A. text" lines): whether the chosen option's text appears in the answer, whether the
  chosen option's first number appears among the answer's numbers (1% tolerance), whether the
  last number stated before the final choice matches the chosen option's / any option's
  number, how many distinct option letters the answer mentions, and whether the chosen letter
  is a parsed option at all.

Missing values are encoded as -1 (e.g. "no number in the chosen option"), so a tree can tell
them apart from 0 (false).
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from classifiers.answer_scan import choice_and_letters, last_start, word_matches

#: (name, substrings counted in the lower-cased answer); plain substring counts (no regex) keep
#: the checker fast
_LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("closest", ("closest", "nearest")),
    ("however", ("however",)),
    ("assume", ("assum",)),
    ("might", ("might", "perhaps", "possibly")),
    ("slightly", ("slightly",)),
    ("none_of", ("none of the",)),
    ("approx", ("approx", "\u2248", "roughly")),
    ("not_listed", ("not listed", "not among", "not match", "not one of", "not present", "not provided")),
    ("recheck", ("re-evaluat", "reevaluat", "recheck", "re-check", "reconsider", "mistake", "recalculat",
                 "re-calculat", "re-examin", "reexamin")),
    ("wait", ("wait", "hmm", "actually")),
)

SIGNAL_NAMES: tuple[str, ...] = tuple(f"lex_{n}" for n, _ in _LEXICON) + (
    "chosen_is_option", "chosen_text_in_answer", "chosen_number_in_answer", "last_number_matches_chosen",
    "last_number_matches_any", "letters_mentioned", "log_answer_numbers",
)

_OPTION = re.compile(r"^\s*\(?([A-J])[.)]\s+(.*?)\s*$", re.MULTILINE)
# a number: its mantissa and, for "a x 10^b", its exponent
# Matches as r"(-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+)(?:\s*[x\u00d7]\s*10\^?\{?(-?\d+)\}?)?", written to open
# with a character class (the first character consumed, then checked by a lookbehind) so that ``re`` skips
# to candidate positions instead of trying the pattern at every character; tests pin the equality.
_NUMBER = re.compile(r"([-.\d](?:(?<=-)(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)|(?<=\.)\d+|(?<=\d)\d*(?:,\d{3})*(?:\.\d+)?))"
                     r"(?:\s*[x\u00d7]\s*10\^?\{?(-?\d+)\}?)?")
# r"(?i:the answer is|answer\s*:)", opening with a character class for the same reason
_FINAL = re.compile(r"[tTaA](?:(?<=[tT])(?i:he answer is)|(?<=[aA])(?i:nswer\s*:))")
_LETTER_MENTION = re.compile(r"(?:\(([A-J])\)|\b(?:option|choice)\s+\(?([A-J])\b|^\s*([A-J])[.)]\s)", re.MULTILINE)
# The letters _LETTER_MENTION finds, one pattern per alternative (no two alternatives match at one position,
# and a match inside another's span names the same letter, so the union of the letters is the same); each
# opens with a literal or a character class, so ``re`` skips to candidate positions. Tests pin the equality.
_MENTION_PAREN = re.compile(r"\(([A-J])\)")
_MENTION_WORD = re.compile(r"(?:o(?<!\wo)ption|c(?<!\wc)hoice)\s+\(?([A-J])\b")
_MENTION_LINE = re.compile(r"\n\s*([A-J])[.)](?=\s)")
_MENTION_FIRST = re.compile(r"\s*([A-J])[.)]\s")
_TAIL = 6000
#: an answer's (final choice, letters stated as its answer): :func:`classifiers.answer_scan.choice_and_letters`
Scan = tuple[str | None, set[str]]


def parse_options(prompt: str) -> dict[str, str]:
    """Option letter -> option text of the prompt's last block of "A. ..." lines."""
    found: dict[str, str] = {}
    for letter, text in _OPTION.findall(prompt[-_TAIL:]):
        if letter == "A":
            found = {}
        found.setdefault(letter, text)
    return found


def numbers_in(text: str) -> list[float]:
    """Every number in ``text``, in order (commas dropped; "a x 10^b" understood)."""
    return _values(_NUMBER.findall(text))


def _values(found: list[tuple[str, str]]) -> list[float]:
    """The numbers of ``_NUMBER.findall`` matches."""
    out = []
    for mantissa, exponent in found:
        value = float(mantissa.replace(",", ""))
        if exponent:
            value *= 10.0 ** max(min(int(exponent), 300), -300)
        out.append(value)
    return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 * max(abs(a), abs(b)) + 1e-9


def _any_close(a: float, values: Iterable[float]) -> bool:
    """``any(_close(a, b) for b in values)`` (``_close`` is symmetric), without a call per value."""
    size = abs(a)
    for b in values:
        if abs(a - b) <= 0.01 * max(size, abs(b)) + 1e-9:
            return True
    return False


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _prompt_options(prompt: str) -> tuple[dict[str, str], dict[str, list[float]]]:
    """The prompt's options and each option's numbers (what the consistency columns need of the prompt)."""
    options = parse_options(prompt)
    return options, {k: numbers_in(v) for k, v in options.items()}


def _consistency(prompt: str, answer: str,
                 prompt_options: tuple[dict[str, str], dict[str, list[float]]] | None = None,
                 scan: Scan | None = None) -> list[float]:
    """The option-consistency columns (see the module docstring) of one pair (``prompt_options``: the
    prompt's :func:`_prompt_options`, ``scan``: the answer's ``choice_and_letters``, when the caller has
    them already)."""
    options, option_numbers = prompt_options if prompt_options is not None else _prompt_options(prompt)
    choice, _ = scan if scan is not None else choice_and_letters(answer)    # rules.extract_choice(answer)
    tail = answer[-_TAIL:]
    final = last_start(_FINAL, tail, "answer", 4)     # the last _FINAL match's start
    body = tail[:final] if final is not None else tail
    found = _NUMBER.findall(body)                     # numbers_in(body), converted when a column needs the values
    letters = letters_mentioned(tail)
    out = [-1.0, -1.0, -1.0, -1.0, -1.0, float(min(len(letters), 10)), math.log1p(len(found))]
    if len(options) < 2 or choice is None:
        return out
    out[0] = float(choice in options)
    chosen = options.get(choice, "")
    if len(chosen) >= 2:
        said = _norm(chosen)
        # each word of the option's text is in the body's lower case, or it is not in _norm(body)
        low = body.lower()
        out[1] = float(all(w in low for w in said.split(" ")) and said in _norm(body))
    mine = option_numbers.get(choice) or []
    if mine:
        answer_numbers = _values(found)
        out[2] = float(_any_close(mine[0], answer_numbers))
        if answer_numbers:
            last = answer_numbers[-1]
            out[3] = float(_any_close(last, mine))
            out[4] = float(_any_close(last, (v for vals in option_numbers.values() for v in vals)))
    return out


def letters_mentioned(text: str) -> set[str]:
    """The option letters ``text`` mentions: ``{a or b or c for a, b, c in _LETTER_MENTION.findall(text)}``."""
    found = set(_MENTION_PAREN.findall(text))
    found.update(word_matches(_MENTION_WORD, text, ("option", "choice")))
    found.update(_MENTION_LINE.findall(text))
    first = _MENTION_FIRST.match(text)
    if first is not None:
        found.add(first.group(1))
    return found


def signal_row(prompt: str, answer: str,
               prompt_options: tuple[dict[str, str], dict[str, list[float]]] | None = None,
               skip: frozenset[str] = frozenset(), scan: Scan | None = None) -> list[float]:
    """The :data:`SIGNAL_NAMES` columns of one (prompt, answer) pair (lexicon columns named in ``skip``:
    0.0, not counted; ``scan``: the answer's ``choice_and_letters`` if known)."""
    words, groups = _lexicon_words(skip)
    counts = list(map(answer[-_TAIL:].lower().count, words))
    lex = [0.0 if at is None else math.log1p(sum(counts[at[0]:at[1]])) for at in groups]
    return lex + _consistency(prompt, answer, prompt_options, scan)


@lru_cache(maxsize=16)
def _lexicon_words(skip: frozenset[str]) -> tuple[tuple[str, ...], tuple[tuple[int, int] | None, ...]]:
    """The words to count (those of the groups not in ``skip``, in order) and each group's slice of them
    (None: skipped)."""
    words: list[str] = []
    groups: list[tuple[int, int] | None] = []
    for name, group in _LEXICON:
        if f"lex_{name}" in skip:
            groups.append(None)
        else:
            groups.append((len(words), len(words) + len(group)))
            words += group
    return tuple(words), tuple(groups)


def signal_matrix(prompts: Sequence[str], answers: Sequence[str], skip: frozenset[str] = frozenset(),
                  scans: Sequence[Scan] | None = None) -> np.ndarray:
    """Shape (n, len(SIGNAL_NAMES)), float64. A prompt's options are parsed once per distinct prompt.
    ``skip``: lexicon columns the caller does not read (a scorer whose trees never split on them), left 0.0;
    ``scans``: each answer's ``choice_and_letters``, when the caller has them."""
    out = np.empty((len(prompts), len(SIGNAL_NAMES)))
    parsed: dict[str, tuple[dict[str, str], dict[str, list[float]]]] = {}
    for i, (p, a) in enumerate(zip(prompts, answers)):
        found = parsed.get(p)
        if found is None:
            found = parsed[p] = _prompt_options(p)
        out[i] = signal_row(p, a, found, skip, scans[i] if scans is not None else None)
    return out
