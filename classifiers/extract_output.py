"""What a piece of code outputs, as an answer states it (pure: no I/O, no state).

A prompt asks for an output when it holds an open assertion ("assert f(3) == ??", or ends in "assert f(3)
==", CRUXEval's templates) or asks to predict / determine / say what the output is. Its answer's final
answer, in order:

1. the last assertion line's value: ``assert f(x) == V``, also inside ``[ANSWER] ... [/ANSWER]`` or a
   fenced block (CRUXEval's answer format; a trailing ``# done`` comment is ignored);
2. the contents of the last ``[ANSWER] V [/ANSWER]``;
3. the whole answer, when it is one literal (``'o=9,h=6,l=4'``, ``[1, 2]``, ``"UA6HAJQ"``, ``True``);
4. a last line that states it: "The output is 'bhihia'.", "So the function returns [1, 2]".

A value that is a Python literal is written as its ``repr`` (so ``'a'`` and ``"a"``, ``[1,2]`` and
``[1, 2]`` are one answer, and so are two orders of one dict or set; case and punctuation count:
``"UA6HAJQ"`` is not ``"ua6hajq"``); an assertion's
value that is no literal is kept as written. Else: None (the answer states no output).
"""
from __future__ import annotations

import ast
import re

_TAIL = 4000
_LITERAL_CHARS = 20000    # a longer candidate is not parsed
_OUTPUT_REQUEST = re.compile(
    r"\bassert\b[^\n]*==\s*\?\?|\bassert\b[^\n]*==\s*\Z|\bcomplete the assert(?:ion| statement)\b[^.\n]{0,40}\boutput\b"
    r"|\b(?:predict|determine|what(?:'s| is| will be))\b[^.?\n]{0,30}\boutput\b", re.IGNORECASE)
_ASSERTION = re.compile(r"^[\s`]*(?:\[ANSWER\]\s*)?assert\b([^\n]*?==[^\n]*?)\s*(?:\[/ANSWER\].*)?$", re.MULTILINE)
_ANSWER_BLOCK = re.compile(r"\[ANSWER\](.*?)\[/ANSWER\]", re.DOTALL)
_FENCE = re.compile(r"^```[\w+-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_STATED = re.compile(r"\b(?:output|result|return value|answer)\b[^\n]{0,40}?\b(?:is|be|would be|will be)\s*:?\s+(.+)$"
                     r"|\breturns?\s*:?\s+(.+)$", re.IGNORECASE)


def is_output_request(prompt: str | None) -> bool:
    """Whether the prompt asks what given code outputs."""
    return bool(prompt) and _OUTPUT_REQUEST.search(prompt.strip()) is not None


def canonical_repr(value: object) -> str:
    """``repr``, with dict items and set members in one order (``==`` ignores theirs)."""
    if isinstance(value, dict):
        items = sorted((canonical_repr(k), canonical_repr(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, (set, frozenset)):
        inner = ", ".join(sorted(map(canonical_repr, value)))
        return f"{type(value).__name__}({{{inner}}})" if value else f"{type(value).__name__}()"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(map(canonical_repr, value))
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


def literal(text: str) -> str | None:
    """:func:`canonical_repr` of the Python literal ``text`` is, or None."""
    if len(text) > _LITERAL_CHARS:
        return None
    try:
        return canonical_repr(ast.literal_eval(text.strip()))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def asserted_value(text: str) -> tuple[str, bool] | None:
    """The value of the answer's last ``assert f(x) == V`` line (in its last 4,000 characters) and whether
    it is a literal: the first right-hand side that is one, as :func:`canonical_repr` ("f('a==b') == 'x'"
    gives "'x'", True), else the text after the last "==" as written (False); None without an assertion
    or with an empty value. The one reading of assertions: text answers use it too
    (:func:`classifiers.extract.extract_text`)."""
    found = _ASSERTION.findall(text[-_TAIL:])
    return _assertion_value(found[-1]) if found else None


def _assertion_value(body: str) -> tuple[str, bool] | None:
    """(value, is a literal) of an assertion line's ``f(x) == V`` (see :func:`asserted_value`)."""
    sides = body.split("==")
    for k in range(1, len(sides)):
        value = literal("==".join(sides[k:]).strip().strip("`"))
        if value is not None:
            return value, True
    raw = sides[-1].strip().strip("`").strip()
    return (raw, False) if raw else None


def _stated_value(line: str) -> str | None:
    match = _STATED.search(line)
    if match is None:
        return None
    said = (match.group(1) or match.group(2)).strip().strip("*`").rstrip(".").strip().strip("`")
    return literal(said)


def extract_output(text: str) -> str | None:
    """The output the answer states (see the module docstring), or None."""
    tail = text[-_TAIL:]
    asserted = _ASSERTION.findall(tail)
    if asserted:
        value = _assertion_value(asserted[-1])
        return None if value is None else value[0]
    blocks = _ANSWER_BLOCK.findall(tail)
    if blocks:
        return literal(blocks[-1])
    whole = text.strip()
    fenced = _FENCE.match(whole)
    found = literal(fenced.group(1) if fenced else whole)
    if found is not None:
        return found
    lines = [line for line in tail.splitlines() if line.strip()]
    return _stated_value(lines[-1]) if lines else None
