"""Byte tables and hash constants shared by the batch and the single-text featurisers (numpy only).

Normalisation (``NORM``): ASCII lower-case, every digit -> ``0``, whitespace and NUL -> space; bytes
>= 0x80 kept. Word bytes (``WORD``, of the normalised byte): a-z, ``0`` and bytes >= 0x80. Byte
categories (``CAT``, each byte in at most one): 1 digit, 2 math symbol, 3 upper-case K..Z,
4 non-ASCII, 5 code punctuation, 6 newline, 7 question mark, 8 upper-case A..J (an upper-case letter
that may open an option line). The ``*_BYTES`` forms are ``bytes.translate`` tables (a C-speed
lookup with no index conversion). Hashes are fixed 64-bit multiplicative hashes (independent of
Python's hash seed), so artifacts are portable.
"""
from __future__ import annotations

import numpy as np

#: one odd multiplier per char n-gram order: every kind hashes into the same table differently
MULT = [np.uint64(m) for m in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                               0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB,
                               0x8EBC6AF09C88C6E3, 0x589965CC75374CC3, 0x1D8E4E27C47D124F)]
M1 = np.uint64(0x9E3779B97F4A7C15)
SALT_W1 = np.uint64(0x5851F42D4C957F2D)   # word unigrams
SALT_W2 = np.uint64(0x2545F4914F6CDD1D)   # word bigrams
P = np.uint64(0x100000001B3)              # bigram: h(first) * P + h(second)
#: MASKS[k] keeps the low k bytes of a uint64 (k = 0..8)
MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)

NORM = np.arange(256, dtype=np.uint8)
NORM[ord("A"):ord("Z") + 1] += 32
NORM[ord("0"):ord("9") + 1] = ord("0")
NORM[[0, 9, 10, 11, 12, 13]] = 32
WORD = np.zeros(256, dtype=bool)
WORD[ord("a"):ord("z") + 1] = True
WORD[ord("0")] = True
WORD[128:] = True

CAT = np.zeros(256, dtype=np.uint8)
for _code, _members in enumerate((b"0123456789", b"=+*/^\\$<>%|", b"KLMNOPQRSTUVWXYZ",
                                  bytes(range(128, 256)), b"{}();[]_#`", b"\n", b"?", b"ABCDEFGHIJ"),
                                 start=1):
    CAT[list(_members)] = _code
N_CATS = 9

NORM_BYTES = NORM.tobytes()
CAT_BYTES = CAT.tobytes()
#: 1 for a byte whose normalised form is a word byte, else 0
WORDISH = np.where(WORD[NORM], 1, 0).astype(np.uint8).tobytes()
