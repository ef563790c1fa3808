"""The features of one text (a request's prompt), with the arithmetic of :class:`classifiers.features.Batch`.

Scoring one prompt is on every request's path, so this path spends as few interpreter steps as it
can: byte-level work is done by ``bytes.translate`` / ``bytes.count`` and one precompiled regular
expression (C loops over the buffer), word hashing by about twenty whole-array numpy calls, and
nothing is computed that a classifier does not read. The numbers are those of ``Batch`` (to rounding).
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from classifiers.hashing import CAT, M1, MASKS, MULT, NORM_BYTES, SALT_W1, SALT_W2, WORDISH, P

if TYPE_CHECKING:  # pragma: no cover
    from classifiers.features import FeatureSpec

_U8 = np.dtype("<u8")
_PAD = bytes(16)  # the packed view reads 8 bytes from each position: pad the buffer's end
# an option line: at the text start or after a newline, "A." / "B)" / "(C)" ... (letters A..J), then a
# space, NUL, newline or the end (searched in b"\n" + text; group 1 ends at the letter)
_OPTION_LINE = re.compile(rb"\n(\(?)[A-J][.)](?=[ \x00\n]|\Z)")
# the byte categories with upper-case A..J merged into K..Z (the structural vector counts upper case
# as one; option lines are found by _OPTION_LINE)
_CAT_UPPER = np.where(CAT == 8, 3, CAT).astype(np.uint8).tobytes()
_CATEGORIES = (1, 2, 3, 4, 5, 6, 7)
# the bytes of no category (most of a text: lower case, spaces...), dropped before counting the others
_NO_CATEGORY = bytes(np.flatnonzero(CAT == 0).tolist())


def options_of(b: bytes) -> tuple[int, int]:
    """(number of option lines, byte offset of the first option letter or len(b)) of one text."""
    framed = b"\n" + b
    first = _OPTION_LINE.search(framed)
    if first is None:
        return 0, len(b)
    return len(_OPTION_LINE.findall(framed, first.start())), first.end(1) - 1


def struct_scalar(chars: int, length: int, cats: list[int], n_words: int, word_bytes: int,
                  options: int, first_option: int, truncated: bool) -> list[float]:
    """The structural vector (:data:`classifiers.features.STRUCT_NAMES` order) of one text, in plain
    Python floats; ``cats[c]`` counts the bytes of category ``c`` (upper case counted as category 3)."""
    ln = max(length, 1)
    return [math.log1p(chars), math.log1p(n_words), float(min(options, 12)), math.log1p(cats[6]),
            math.log1p(cats[7]), cats[1] / ln, cats[2] / ln, cats[3] / ln, cats[4] / ln,
            cats[5] / ln, word_bytes / max(n_words, 1), first_option / ln, float(truncated)]


@lru_cache(maxsize=None)
def _hash_shift(bits: int) -> np.uint64:
    """A 64-bit hash's top ``bits`` bits are its bucket: shift right by this."""
    return np.uint64(64 - bits)


@lru_cache(maxsize=16)
def _word_tables(limit: int) -> tuple[np.ndarray, np.ndarray]:
    """For texts of at most ``limit`` bytes: the byte mask of a word's hash by word length
    (its first 8 bytes), and ``limit`` bigram salts followed by ``limit`` unigram salts."""
    masks = MASKS.take(np.minimum(np.arange(limit + 1), 8))
    salts = np.concatenate([np.full(limit, SALT_W2), np.full(limit, SALT_W1)])
    return masks, salts


class Single:
    """One text: its clipped bytes, normalised 8-byte windows and words."""

    def __init__(self, text: str, spec: FeatureSpec) -> None:
        self.spec, self.text, self.n = spec, text, 1
        self.clipped, self.truncated = spec.clip(text)
        b = self.clipped
        self.size = size = len(b)
        # uint64 per position: the 8 normalised bytes starting there (overlapping unaligned view)
        self.packed = np.ndarray((size,), _U8, b.translate(NORM_BYTES) + _PAD, 0, (1,))
        wordish = b.translate(WORDISH)
        self.word_bytes = wordish.count(1)
        if self.word_bytes:
            flags = np.frombuffer(b"\0" + wordish + b"\0", dtype=np.uint8)
            edges = (flags[1:] != flags[:-1]).nonzero()[0]
            self.word_begin, self.word_end = edges[0::2], edges[1::2]
        else:
            self.word_begin = self.word_end = np.zeros(0, dtype=np.intp)

    def hashed_sum(self, table: np.ndarray) -> np.ndarray:
        return np.array([self.hashed_total(table)])

    def hashed_total(self, table: np.ndarray) -> float:
        """The text's sum over kinds of its scaled n-gram weights."""
        shift, total = _hash_shift(self.spec.bits), 0.0
        for n in self.spec.char_ngrams:
            count = self.size - n + 1
            if count > 0:
                keys = ((self.packed[:count] & MASKS[n]) * MULT[n]) >> shift
                total += np.add.reduce(table.take(keys.view(np.intp))) / math.sqrt(count)
        if self.word_begin.size and self.spec.word_ngrams:
            total = self._add_words(total, table, shift)
        return float(total)

    def _add_words(self, total: float, table: np.ndarray, shift: np.uint64) -> float:
        """``total`` plus the word unigram and bigram sums (both kinds' keys hashed in one pass)."""
        n, kinds = self.word_begin.size, self.spec.word_ngrams
        unigrams = n if 1 in kinds else 0
        bigrams = n - 1 if 2 in kinds else 0
        if not unigrams + bigrams:
            return total
        limit = self.spec.head + self.spec.tail + 1
        masks, salts = _word_tables(limit)
        h = self.packed[self.word_begin]  # (take() would first copy the strided view)
        h &= masks.take(self.word_end - self.word_begin)
        keys = h
        if bigrams:  # keys: the bigrams' then the unigrams' (salted apart)
            keys = h[:-1] * P
            keys += h[1:]
            if unigrams:
                keys = np.concatenate((keys, h))
        keys ^= salts[limit - bigrams: limit + unigrams]
        keys *= M1
        keys >>= shift
        weights = table[keys.view(np.intp)]
        if not (unigrams and bigrams):
            return total + np.add.reduce(weights) / math.sqrt(weights.size)
        bigram_sum, unigram_sum = np.add.reduceat(weights, (0, bigrams)).tolist()
        return total + unigram_sum / math.sqrt(unigrams) + bigram_sum / math.sqrt(bigrams)

    def struct(self) -> np.ndarray:
        return np.array([self.struct_list()])

    def struct_list(self) -> list[float]:
        b = self.clipped
        cats = [0, *map(b.translate(_CAT_UPPER, _NO_CATEGORY).count, _CATEGORIES)]
        options, first = options_of(b)
        return struct_scalar(len(self.text), len(b), cats, self.word_begin.size, self.word_bytes,
                             options, first, self.truncated)
