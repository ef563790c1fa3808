"""Fast scans of an answer for the answer checker, each equal to the pattern search it stands for.

The checker's cue patterns (``answer is (X)``, ``Answer: X``, "the answer is", ``option C``) can only
match where a literal word occurs: a case-insensitive "answer" (on an ASCII text, where ``re``'s case
folding is ASCII's, the word's occurrences in ``text.lower()`` at the same positions), or a case-sensitive
"option" / "choice". No two matches of one of these patterns can overlap (a match holds its word once and
nothing after the word spells it again), so ``findall`` / ``finditer`` return exactly the matches found
by ``pattern.match(text, p)`` at the word's occurrences ``p`` (a lookbehind and ``\\b`` see the characters
before ``p`` as in a search). ``str.find`` skips to those occurrences in C instead of ``re`` trying the
pattern at every ``t`` / ``a`` / ``o`` / ``c`` of the text. Texts that are not ASCII take the patterns
themselves. Tests pin every function to the original search (drawn texts; every recorded MMLU-Pro answer).
"""
from __future__ import annotations

import re

from classifiers.rules import _ANSWER_COLON, _ANSWER_IS, _BARE_LETTER, _REFUSAL, _TAIL_CHARS

_REFUSAL_HEAD = 400          # what rules.is_refusal reads
# every alternative of rules._REFUSAL starts with one of these (case-insensitive; ASCII texts only)
_REFUSAL_WORDS = ("i'm", "i am", "i can", "as an ai")


def occurrences(text: str, word: str) -> list[int]:
    """Start of every occurrence of ``word`` in ``text`` (``word`` does not overlap itself)."""
    out, p = [], text.find(word)
    while p >= 0:
        out.append(p)
        p = text.find(word, p + len(word))
    return out


def choice_and_letters(answer: str) -> tuple[str | None, set[str]]:
    """``(rules.extract_choice(answer), rules.answer_letters(answer))`` in one scan."""
    tail = answer[-_TAIL_CHARS:]
    if tail.isascii():
        starts = occurrences(tail.lower(), "answer")
        said = [m.group(1) for p in starts if (m := _ANSWER_IS.match(tail, p)) is not None]
        colon = [m.group(1) for p in starts if (m := _ANSWER_COLON.match(tail, p)) is not None]
    else:
        said, colon = _ANSWER_IS.findall(tail), _ANSWER_COLON.findall(tail)
    letters = {*said, *colon}
    if said or colon:
        return (said or colon)[-1], letters
    bare = _BARE_LETTER.match(tail)
    return (bare.group(1) if bare else None), letters


def is_refusal(answer: str) -> bool:
    """``rules.is_refusal(answer)``: an ASCII head holding none of the words every refusal starts with
    is none."""
    head = answer[:_REFUSAL_HEAD]
    if head.isascii():
        low = head.lower()
        if not any(w in low for w in _REFUSAL_WORDS):
            return False
    return _REFUSAL.search(head) is not None


def last_start(pattern: re.Pattern[str], text: str, word: str, back: int) -> int | None:
    """Start of the last ``pattern.finditer(text)`` match, for a case-insensitive pattern whose every match
    starts at an occurrence of ``word`` (lower case) or ``back`` characters before one, no two overlapping."""
    if not text.isascii():
        found = None
        for found in pattern.finditer(text):
            pass
        return found.start() if found is not None else None
    low = text.lower()
    p = low.rfind(word)
    while p >= 0:          # the rightmost occurrence with a match holds the last match (occurrences are apart)
        if p >= back and pattern.match(text, p - back) is not None:
            return p - back
        if pattern.match(text, p) is not None:
            return p
        p = low.rfind(word, 0, p)
    return None


def word_matches(pattern: re.Pattern[str], text: str, words: tuple[str, ...]) -> list[str]:
    """``pattern.findall(text)`` (one group) for a pattern whose every match starts at one of ``words``
    (case-sensitive), no two overlapping, in order."""
    starts = sorted(p for w in words for p in occurrences(text, w))
    return [m.group(1) for p in starts if (m := pattern.match(text, p)) is not None]
