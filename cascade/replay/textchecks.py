"""Rule checks over many answer texts at once, with exactly the outcomes of the per-answer callables.

The checks that read nothing but the answer text (:data:`TEXT_ONLY`) are run once per distinct text.
``non_empty``, ``min_chars`` and ``no_refusal`` are computed over an Arrow string array for the pure-ASCII
texts (numpy over the UTF-8 bytes; RE2 for the refusal pattern, which reads an ASCII text as Python's
``re`` does); non-ASCII texts, where Python's notions of whitespace, ``\\W`` and case folding go beyond
ASCII, are left to the callable. A text the vectorised path fails is checked again by the callable, whose
outcome (and reason) is the one kept: the vectorised path only ever saves calls that pass.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from policies.checks import _REFUSAL, Answer, Check, CheckOutcome

#: checks whose outcome depends on the answer text alone (not the prompt, model or finish reason)
TEXT_ONLY = frozenset({"non_empty", "no_refusal", "min_chars", "answer_format", "valid_json", "json_schema"})
VECTORISED = frozenset({"non_empty", "min_chars", "no_refusal"})
REFUSAL_CHARS = 200                       # what policies.checks._no_refusal reads of an answer
# the ASCII characters str.isspace() is true for: \t \n \v \f \r, \x1c-\x1f and the space
_ASCII_SPACE = np.zeros(256, dtype=np.int64)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1


def _arrow(texts: Sequence[str]) -> "tuple[object, np.ndarray]":
    import pyarrow as pa
    import pyarrow.compute as pc
    array = pa.array(texts, type=pa.large_string())
    return array, pc.string_is_ascii(array).to_numpy(zero_copy_only=False)


def _nonspace_counts(array: object) -> np.ndarray:
    """Per text, the number of bytes that are not ASCII whitespace (the characters of an ASCII text
    that are not ``isspace()``)."""
    _, offsets_buf, data_buf = array.buffers()          # type: ignore[attr-defined]
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset: array.offset + len(array) + 1]  # type: ignore
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    spaces = np.concatenate([[0], np.cumsum(_ASCII_SPACE[data])])
    return np.diff(offsets) - (spaces[offsets[1:]] - spaces[offsets[:-1]])


def _refusals(array: object) -> np.ndarray:
    import pyarrow.compute as pc
    head = pc.utf8_slice_codeunits(array, 0, REFUSAL_CHARS)
    # _REFUSAL's pattern without its IGNORECASE flag, which RE2 takes as an option
    found = pc.match_substring_regex(head, _REFUSAL.pattern, ignore_case=True)
    return found.to_numpy(zero_copy_only=False)


def vectorised_pass(name: str, params: dict, texts: Sequence[str]) -> np.ndarray:
    """Per text: True where the check certainly passes; False where it may fail or the text is not ASCII
    (those are for the callable)."""
    if not texts:
        return np.zeros(0, dtype=bool)
    try:
        array, ascii_only = _arrow(texts)
    except (UnicodeError, ValueError):                   # e.g. a lone surrogate (no UTF-8 for it)
        return np.zeros(len(texts), dtype=bool)
    if name == "no_refusal":
        ok = ~_refusals(array)
    else:
        need = 1 if name == "non_empty" else int(params["n"])
        ok = _nonspace_counts(array) >= need
    return ok & ascii_only


def run_text_check(name: str, params: dict, check: Check, texts: Sequence[str]) -> tuple[np.ndarray, dict[int, str]]:
    """``(passed (len(texts),), {index: reason} of the failures)`` of ``check`` on each text, as
    ``check(Answer(prompt, text))`` gives them (``name`` must be in :data:`TEXT_ONLY`)."""
    passed = vectorised_pass(name, params, texts) if name in VECTORISED else np.zeros(len(texts), dtype=bool)
    reasons: dict[int, str] = {}
    for k in np.flatnonzero(~passed).tolist():
        out: CheckOutcome = check(Answer(prompt="", text=texts[k]))
        passed[k] = out.passed
        if not out.passed:
            reasons[k] = out.reason
    return passed, reasons
