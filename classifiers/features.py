"""Vectorised text features shared by training and inference (numpy only).

A text yields, per *kind* of hashed n-gram (character 3/4/5-grams and word 1/2-grams of the
normalised text), one bucket number in ``[0, 2**bits)`` per occurrence, each occurrence worth
``1 / sqrt(number of n-grams of that kind in that text)``; plus a small dense vector of
*structural* features (length, option count, digit / math-symbol / uppercase density...).

Normalisation: ASCII lower-case, every digit -> ``0``, whitespace and NUL -> space; bytes >= 0x80
(UTF-8) are kept and count as word bytes (the tables and hash constants: :mod:`classifiers.hashing`).
A word is hashed from its first 8 bytes (a crude stemmer). Texts longer than ``head + tail`` bytes
keep their first ``head`` and last ``tail`` bytes (the length feature still sees the full length).

Two implementations of the same arithmetic: :class:`Batch` (many texts in one NUL-separated
byte buffer, a few dozen whole-array numpy calls per cache-sized chunk) and
:class:`~classifiers.single.Single` (one text, the fewest interpreter steps; re-exported here).
They agree to rounding (summation order).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from classifiers.hashing import CAT_BYTES as _CAT_BYTES, M1 as _M1, MASKS as _MASKS, MULT as _MULT, N_CATS
from classifiers.hashing import NORM_BYTES as _NORM_BYTES, SALT_W1 as _SALT_W1, SALT_W2 as _SALT_W2
from classifiers.hashing import WORDISH as _WORDISH, P as _P
from classifiers.single import Single

__all__ = ["N_CATS", "STRUCT_NAMES", "Batch", "FeatureSpec", "KindBuckets", "Single", "chunks",
           "sparse_matrix", "struct_from_counts", "struct_matrix"]
# An option line starts (at the text start or after a newline) with "A." / "B)" / "(C)" ... (letters
# A..J), followed by a space, newline, NUL or the end: classifiers.single.options_of() and
# Batch.options() agree.

#: names of the dense structural features, in column order
STRUCT_NAMES: tuple[str, ...] = (
    "log_chars", "log_words", "options", "log_newlines", "log_questions", "digit_frac",
    "math_frac", "upper_frac", "nonascii_frac", "code_frac", "mean_word_len", "stem_frac",
    "truncated",
)
CHUNK_BYTES = 1 << 18  # a batch is processed in chunks of about this many bytes


@dataclass(frozen=True)
class FeatureSpec:
    """Featuriser parameters (stored in the artifact; training and inference must agree)."""

    bits: int = 16
    char_ngrams: tuple[int, ...] = (3, 4, 5)
    word_ngrams: tuple[int, ...] = (1, 2)
    head: int = 2048
    tail: int = 1024

    def __post_init__(self) -> None:
        if not all(1 <= n <= 8 for n in self.char_ngrams):
            raise ValueError("char n-gram orders must be in 1..8")
        if not set(self.word_ngrams) <= {1, 2}:
            raise ValueError("word n-gram orders must be 1 and/or 2")
        if not 8 <= self.bits <= 24:
            raise ValueError("bits must be in 8..24")
        if self.head < 0 or self.tail < 0:
            raise ValueError("head and tail must be >= 0")

    @property
    def n_buckets(self) -> int:
        return 1 << self.bits

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(f"c{n}" for n in self.char_ngrams) + tuple(f"w{n}" for n in self.word_ngrams)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "FeatureSpec":
        return cls(bits=int(d["bits"]), char_ngrams=tuple(int(n) for n in d["char_ngrams"]),
                   word_ngrams=tuple(int(n) for n in d["word_ngrams"]),
                   head=int(d["head"]), tail=int(d["tail"]))

    def clip(self, text: str) -> tuple[bytes, bool]:
        """The UTF-8 bytes the features read (head + tail of long texts) and whether cut."""
        b = text.encode("utf-8", "surrogatepass")
        if len(b) > self.head + self.tail:
            return b[: self.head] + b" " + (b[-self.tail:] if self.tail else b""), True
        return b, False


def struct_from_counts(chars: np.ndarray, lengths: np.ndarray, cats: np.ndarray,
                       n_words: np.ndarray, word_bytes: np.ndarray, options: np.ndarray,
                       first_option: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """The structural matrix (:data:`STRUCT_NAMES` order) from per-text counts; ``cats`` is
    (n, N_CATS) byte-category counts of the clipped bytes."""
    length = np.maximum(lengths, 1).astype(np.float64)
    out = np.empty((lengths.shape[0], len(STRUCT_NAMES)))
    out[:, 0] = np.log1p(chars)
    out[:, 1] = np.log1p(n_words)
    out[:, 2] = np.minimum(options, 12)
    out[:, 3] = np.log1p(cats[:, 6])
    out[:, 4] = np.log1p(cats[:, 7])
    out[:, 5:10] = cats[:, 1:6] / length[:, None]
    out[:, 7] = (cats[:, 3] + cats[:, 8]) / length
    out[:, 10] = word_bytes / np.maximum(n_words, 1)
    out[:, 11] = first_option / length
    out[:, 12] = truncated
    return out


@dataclass(frozen=True)
class KindBuckets:
    """The occurrences of one n-gram kind in a batch. Either contiguous per text (``starts``:
    text i owns ``buckets[starts[i]:starts[i+1]]``, every text at least one entry) or tagged
    (``rows``: the text of each entry). Entries at ``invalid`` are not real occurrences."""

    buckets: np.ndarray        # intp
    starts: np.ndarray | None  # intp per text, or None
    rows: np.ndarray | None    # intp per entry, or None
    invalid: np.ndarray        # intp
    scale: np.ndarray          # float64 per text: 1 / sqrt(real occurrences) (1 if none)

    def weighted_sums(self, table: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """Per text: scale * sum of ``table`` over its real occurrences (text i reading
        ``table[offsets[i]:]`` when ``offsets`` is given)."""
        if offsets is not None:
            rows = self.rows if self.rows is not None else np.repeat(
                np.arange(self.scale.size), np.diff(self.starts, append=self.buckets.size))
            g = table.take(self.buckets + offsets[rows])
        else:
            g = table.take(self.buckets)
        g[self.invalid] = 0.0
        if self.starts is not None:
            return np.add.reduceat(g, self.starts) * self.scale
        return np.bincount(self.rows, weights=g, minlength=self.scale.size) * self.scale

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, bucket, value) of every real occurrence (training)."""
        if self.rows is not None:
            rows = self.rows
        else:
            rows = np.repeat(np.arange(self.scale.size), np.diff(self.starts, append=self.buckets.size))
        keep = np.ones(self.buckets.size, dtype=bool)
        keep[self.invalid] = False
        return rows[keep], self.buckets[keep], self.scale[rows[keep]]


class Batch:
    """Many texts in one NUL-separated byte buffer; each feature group computed on demand."""

    def __init__(self, texts: Sequence[str], spec: FeatureSpec) -> None:
        self.spec, self.texts, self.n = spec, texts, len(texts)
        self.clipped = [t.encode("utf-8", "surrogatepass") for t in texts]
        self.lengths = np.fromiter(map(len, self.clipped), dtype=np.intp, count=self.n)
        self.truncated = np.zeros(self.n)
        for i in np.flatnonzero(self.lengths > spec.head + spec.tail).tolist():
            self.clipped[i], _ = spec.clip(texts[i])
            self.lengths[i] = len(self.clipped[i])
            self.truncated[i] = 1.0
        joined = b"\0".join(self.clipped) + b"\0"
        self.joined = joined
        self.size = len(joined)
        norm = np.zeros(self.size + 16, dtype=np.uint8)
        norm[: self.size] = np.frombuffer(joined.translate(_NORM_BYTES), dtype=np.uint8)
        self.starts = np.cumsum(self.lengths + 1) - (self.lengths + 1)  # each text + its NUL
        norm[self.starts + self.lengths] = 0  # separators are 0 in the normalised buffer
        self.norm = norm
        # uint64 per position: the 8 normalised bytes starting there (overlapping unaligned view)
        self.packed = np.ndarray((self.size,), dtype="<u8", buffer=norm, strides=(1,))
        self._words: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def words(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(word hash, text index, word length) of every word, in order."""
        if self._words is None:
            is_word = np.zeros(self.size + 1, dtype=bool)  # separators (NUL) are not word bytes
            is_word[: self.size] = np.frombuffer(self.joined.translate(_WORDISH), dtype=bool)
            edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
            if is_word[0]:
                edges = np.concatenate(([0], edges))
            begin, length = edges[0::2], edges[1::2] - edges[0::2]
            h = self.packed[begin] & _MASKS[np.minimum(length, 8)]
            rows = np.repeat(np.arange(self.n, dtype=np.intp), self.lengths + 1)[begin]
            self._words = (h, rows, length)
        return self._words

    def kind(self, name: str) -> KindBuckets:
        n, shift = int(name[1:]), np.uint64(64 - self.spec.bits)
        if name[0] == "c":
            buckets = (((self.packed & _MASKS[n]) * _MULT[n]) >> shift).view(np.intp)
            # an n-gram starting in the last n-1 bytes of a text (or on its NUL) crosses its end
            ends = self.starts + self.lengths
            invalid = (ends[:, None] - np.arange(n, dtype=np.intp)).ravel()
            count = np.maximum(self.lengths - n + 1, 1)
            return KindBuckets(buckets, self.starts, None, invalid[invalid >= 0], 1.0 / np.sqrt(count))
        h, rows, _ = self.words()
        count = np.bincount(rows, minlength=self.n)
        if n == 1:
            keys = ((h ^ _SALT_W1) * _M1) >> shift
            return KindBuckets(keys.view(np.intp), None, rows, np.zeros(0, np.intp),
                               1.0 / np.sqrt(np.maximum(count, 1)))
        keys = ((h[:-1] * _P + h[1:]) ^ _SALT_W2) * _M1 >> shift
        invalid = np.flatnonzero(rows[1:] != rows[:-1])  # pairs straddling two texts
        return KindBuckets(keys.view(np.intp), None, rows[:-1], invalid,
                           1.0 / np.sqrt(np.maximum(count - 1, 1)))

    def hashed_sum(self, table: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """Per text: the sum over kinds of its scaled n-gram weights (char kinds computed in
        place in two reused buffers: the same arithmetic as :meth:`kind`, fewer allocations).
        With ``offsets`` (intp per text), text i reads ``table[offsets[i]:]``: one pass over a
        stack of tables (experts) chosen per text."""
        total = np.zeros(self.n)
        spread = None if offsets is None or not self.spec.char_ngrams else \
            np.repeat(offsets, self.lengths + 1).view(np.uint64)
        shift = np.uint64(64 - self.spec.bits)
        keys = np.empty(self.size, dtype=np.uint64)
        weights = np.empty(self.size, dtype=np.float64)
        ends = self.starts + self.lengths
        for n in self.spec.char_ngrams:
            np.bitwise_and(self.packed, _MASKS[n], out=keys)
            np.multiply(keys, _MULT[n], out=keys)
            np.right_shift(keys, shift, out=keys)
            if spread is not None:
                keys += spread
            table.take(keys.view(np.intp), out=weights)
            for k in range(n):  # n-grams crossing a text's end (see kind())
                idx = ends - k
                weights[idx[idx >= 0]] = 0.0
            total += np.add.reduceat(weights, self.starts) / np.sqrt(np.maximum(self.lengths - n + 1, 1))
        for n in self.spec.word_ngrams:
            total += self.kind(f"w{n}").weighted_sums(table, offsets)
        return total

    def options(self, cat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`classifiers.single.options_of` of every text, vectorised (``cat``: the byte categories)."""
        raw = np.frombuffer(self.joined + b"\0\0", dtype=np.uint8)
        cand = np.flatnonzero(cat == 8)  # byte offsets of A..J
        text = np.searchsorted(self.starts, cand, side="right") - 1
        start = self.starts[text]
        nxt, nxt2 = raw[cand + 1], raw[cand + 2]
        prev = np.where(cand == start, 10, raw[cand - 1])
        prev2 = np.where(cand - 1 <= start, 10, raw[cand - 2])
        ok = ((nxt == 46) | (nxt == 41)) & ((nxt2 == 32) | (nxt2 == 0) | (nxt2 == 10))
        ok &= (prev == 10) | ((prev == 40) & (prev2 == 10))
        cand, text = cand[ok], text[ok]
        count = np.bincount(text, minlength=self.n)
        first = self.lengths.copy()
        if cand.size:
            is_first = np.concatenate(([True], text[1:] != text[:-1]))
            first[text[is_first]] = cand[is_first] - self.starts[text[is_first]]
        return count, first

    def struct(self) -> np.ndarray:
        """Dense structural features, shape (n, len(STRUCT_NAMES)), float64."""
        _, rows, length = self.words()
        cat = np.frombuffer(self.joined.translate(_CAT_BYTES), dtype=np.uint8)
        key = np.repeat(np.arange(0, self.n * N_CATS, N_CATS, dtype=np.intp), self.lengths + 1)
        key += cat
        cats = np.bincount(key, minlength=self.n * N_CATS).reshape(self.n, N_CATS)
        options, first = self.options(cat)
        return struct_from_counts(np.fromiter(map(len, self.texts), np.float64, self.n), self.lengths,
                                  cats, np.bincount(rows, minlength=self.n),
                                  np.bincount(rows, weights=length, minlength=self.n), options,
                                  first, self.truncated)


def chunks(texts: Sequence[str], spec: FeatureSpec) -> Iterator[tuple[int, Batch | Single]]:
    """Cache-sized pieces of ``texts``: yields (offset, :class:`Batch` or :class:`Single`)."""
    if len(texts) == 1:
        yield 0, Single(texts[0], spec)
        return
    limit = spec.head + spec.tail + 2
    i, n = 0, len(texts)
    while i < n:
        j, size = i, 0
        while j < n and (size < CHUNK_BYTES or j == i):
            size += min(len(texts[j]), limit) + 1  # characters: a lower bound on bytes
            j += 1
        yield i, Batch(texts[i:j], spec)
        i = j


def sparse_matrix(texts: Sequence[str], spec: FeatureSpec) -> Any:
    """All hashed kinds of ``texts`` as a scipy CSR matrix of shape (n, 2**bits) (the kinds share
    the table; occurrences in one bucket add up). Training only (imports scipy)."""
    from scipy import sparse

    blocks = []
    for _, batch in chunks(texts, spec):
        batch = batch if isinstance(batch, Batch) else Batch([batch.text], spec)
        parts = [batch.kind(name).entries() for name in spec.kinds]
        rows, cols, vals = (np.concatenate([p[k] for p in parts]) for k in range(3))
        blocks.append(sparse.csr_matrix((vals, (rows, cols)), shape=(batch.n, spec.n_buckets)))
    if not blocks:
        return sparse.csr_matrix((0, spec.n_buckets))
    return sparse.vstack(blocks).tocsr()


def struct_matrix(texts: Sequence[str], spec: FeatureSpec) -> np.ndarray:
    """Structural features of ``texts``, shape (n, len(STRUCT_NAMES))."""
    out = np.empty((len(texts), len(STRUCT_NAMES)))
    for off, batch in chunks(texts, spec):
        out[off:off + batch.n] = batch.struct()
    return out
