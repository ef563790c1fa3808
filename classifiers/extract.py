"""Final answers pulled out of model answers, and whether two answers agree (pure: no I/O, no state).

    extract(text, kind, prompt=None) -> str | None     None: no final answer of that kind found
    agree(a, b, kind, prompt=None) -> bool | None      None: cannot judge (an extraction failed)

Kinds (the ``extract:`` values of an agreement check):

* ``choice``: the option letter A-J of an explicit final-answer statement, cue and letter on one
  line: "the answer is (X)", "Answer: X", ``\\boxed{X}``, "the correct option is X"; else a last
  line that is the letter alone ("C", "(C)", "**C**"); else (given the prompt) an answer that is one
  option's text. Never a stray letter: "the correct answer is:" above a quoted option line ("C. text")
  states no letter (MMLU-Pro's scorer scores such answers 0 too). Unlike that scorer, the *last*
  statement counts ("the answer is (A)... so the answer is (B)" -> B), the letter must end a word
  ("the answer is Hurler syndrome" is no "H") and, when the prompt lists its options, must be one
  of them. :func:`classifiers.rules.extract_choice` (used by the answer checker) is the first two
  cues only and is left as it is.
* ``number``: the final number as the answer states it (:mod:`classifiers.extract_number`): "#### 42",
  the last ``\\boxed{...}``, "the answer is 1,234.50" / "Answer: $18", else a last line that ends an
  equation ("... = 42 apples"), concludes ("So 42"), states one result ("Fawn has 28 books.", "The total
  inner volume of all 3 boxes is 72 cubic inches." -> 72) or is one number ("**18**"), else the last number
  of a one-line reply of at most :data:`TEXT_MAX_WORDS` words. Never a stray number of the reasoning.
  Canonical form: an integer, a terminating decimal or a reduced fraction ("2/6" -> "1/3").
* ``json:<field>``: the field (dotted path, list indices as numbers: ``items.0.id``) of the JSON
  object in the answer (whole answer, a fenced block, or the first object in the text); ``json``
  alone is the whole object. Canonical JSON: sorted keys, no spaces, integral floats as integers.
* ``text``: a short final answer, normalised: a final ``assert f(x) == VALUE`` line's VALUE (as a
  Python literal's repr), else the stated final answer if there is one ("The answer is Paris."), else
  the whole answer; NFKC, lower case, punctuation and a leading article dropped, whitespace collapsed.
  Longer than :data:`TEXT_MAX_WORDS` words, or holding code: None (two long texts are not compared word
  for word). Given a prompt that asks what code outputs (:func:`classifiers.extract_output.is_output_request`):
  the output the answer states, as a Python literal, case and punctuation kept (:mod:`classifiers.extract_output`).
* ``auto``: from the prompt (:func:`answer_kind`): options listed -> choice, a numeric question ->
  number, else text. Without a prompt: text.
"""
from __future__ import annotations

import functools
import re
import unicodedata

from classifiers.extract_json import extract_json
from classifiers.extract_output import asserted_value, extract_output, is_output_request
from classifiers.extract_number import boxed_contents, canonical_number, delatex, extract_number  # noqa: F401
from classifiers.rules import is_multiple_choice, rule_failure
from classifiers.signals import parse_options

KINDS: tuple[str, ...] = ("auto", "choice", "number", "text", "json")
#: a ``text`` answer longer than this (in words) cannot be judged
TEXT_MAX_WORDS = 12
_SHORT_CHARS = 50 * TEXT_MAX_WORDS  # longer candidates are not normalised at all
_TAIL = 4000  # final answers are searched for in the answer's last characters

# --- choice -------------------------------------------------------------------------------------
# what may stand between a cue and its letter on the same line: spaces, "*", ":", "$", brackets,
# \boxed{, \text{ (never a line break: "the answer is:" above a quoted option line states no letter)
_DECOR = r"(?:[ \t*:_$(\[{}]|\\(?:boxed|text|textbf|mathbf|mathrm)\b|\\[(\[])*"
_LETTER = r"([A-J])(?![\w'-])"
_CHOICE_CUES = tuple(re.compile(cue + _DECOR + _LETTER) for cue in (
    r"(?i:answer\s+(?:is|would\s+be|should\s+be))",
    r"(?i:answer)\s*:",
    r"\\boxed\{",
    r"(?i:(?:correct|best|right)\s+(?:option|choice)(?:\s+is)?)",
    r"(?i:(?:correct|best|right)\s+(?:option|choice|answer)\b[^.\n]{0,80}?\bis)",
))
# a last line that is the letter alone: "C", "(C)", "**C**", "C.", "D (" (a one-letter reply cut short)
_LAST_LINE_LETTER = re.compile(r"^[\s*#>(\[]*([A-J])[\s)\].:*(]*$")


def _stated_letters(tail: str, allowed: set[str]) -> list[tuple[int, str]]:
    """(position, letter) of every final-answer statement in ``tail`` whose letter is allowed."""
    return [(m.start(), m.group(1)) for cue in _CHOICE_CUES for m in cue.finditer(tail) if m.group(1) in allowed]


def extract_choice(text: str, prompt: str | None = None) -> str | None:
    """The answer's final option letter (A-J), or None when it states none."""
    tail = text[-_TAIL:]
    options = parse_options(prompt) if prompt else {}
    allowed = set(options) if len(options) >= 2 else set("ABCDEFGHIJ")
    stated = _stated_letters(tail, allowed)
    if stated:
        return max(stated)[1]
    lines = [line for line in tail.splitlines() if line.strip()]
    last = _LAST_LINE_LETTER.match(lines[-1]) if lines else None
    if last and last.group(1) in allowed:
        return last.group(1)
    return _option_by_text(text, options)


def _option_by_text(text: str, options: dict[str, str]) -> str | None:
    """The letter of the one option whose normalised text is the whole (short) answer."""
    if not options or len(text) > _SHORT_CHARS:
        return None
    said = normalise_text(text)
    if not said or len(said.split()) > TEXT_MAX_WORDS:
        return None
    hits = [letter for letter, option in options.items() if normalise_text(option) == said]
    return hits[0] if len(hits) == 1 else None


# --- number: classifiers/extract_number.py --------------------------------------------------------


# --- json: classifiers/extract_json.py ----------------------------------------------------------


# --- text ---------------------------------------------------------------------------------------
_TEXT_CUE = re.compile(r"(?i:final answer|the answer is|answer\s*:)\s*(?:is)?\s*:?\s*([^\n]+)")
_LEADING_CUE = re.compile(r"^(?:final answer|the answer is|answer)\b\s*(?:is)?\s*:?\s*", re.IGNORECASE)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+(?=\S)")


def normalise_text(text: str) -> str:
    """NFKC, lower case, no leading "the answer is", punctuation -> spaces, one article dropped."""
    text = unicodedata.normalize("NFKC", delatex(text)).strip().lower()
    text = _LEADING_CUE.sub("", text)
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    text = " ".join(text.split())
    return _ARTICLE.sub("", text)


def _asserted_literal(text: str) -> str | None:
    """The right-hand side of the answer's last ``assert ... == X`` line, read as output predictions read
    it (:func:`classifiers.extract_output.asserted_value`): a literal canonical (so "'a'" and '"a"',
    "[1,2]" and "[1, 2]" are one answer), other text normalised; or None."""
    found = asserted_value(text)
    if found is None:
        return None
    value, is_literal = found
    return value if is_literal else (normalise_text(value) or None)


def extract_text(text: str) -> str | None:
    """The normalised short final answer (or a final assertion's literal), or None when it is long,
    code, or empty."""
    literal = _asserted_literal(text)
    if literal is not None:
        return literal
    if "```" in text:
        return None
    stated = _TEXT_CUE.findall(text[-_TAIL:])
    boxed = boxed_contents(text[-_TAIL:])
    candidate = boxed[-1] if boxed else stated[-1] if stated else text
    if len(candidate) > _SHORT_CHARS:
        return None
    said = normalise_text(candidate)
    if not said or len(said.split()) > TEXT_MAX_WORDS:
        return None
    return said


# --- kinds --------------------------------------------------------------------------------------
_CODE_REQUEST = re.compile(
    r"\b(?:write|implement|create|complete|define|fix)\b[^.?\n]{0,60}?\b(?:function|program|script|class|"
    r"method|code|query|regex|snippet)\b|```|^\s*def \w+\(", re.IGNORECASE | re.MULTILINE)
_NUMERIC_CUE = re.compile(
    r"\bhow (?:many|much|long|far|old|fast|often)\b|\bwhat (?:percent(?:age)?|fraction)\b|\\boxed|####"
    r"|\bround(?:ed)? to\b|\bto the nearest\b", re.IGNORECASE)
_COMPUTE_CUE = re.compile(
    r"\b(?:calculate|compute|evaluate|solve|simplify)\b|\bwhat(?:'s| is)\s+[-(]?\d[\d\s.,+*/^()\u00d7\u00f7-]*\d"
    r"|\bwhat is the (?:value|result|sum|product|total|difference|area|perimeter|volume|probability|average"
    r"|mean|remainder|number)\b", re.IGNORECASE)
# a question for a quantity that names it instead of asking "how many / how much": "what's her annual
# salary?", "What was the original price of the book?", "how tall is the tree?", "Find her mean score."
_QUANTITY = (r"(?:price|cost|salary|pension|wage|income|profit|revenue|balance|bill|fee|amount|sum|total|difference"
             r"|average|mean|median|number|count|percentage|rate|value|distance|speed|weight|height|length|width"
             r"|depth|area|volume|capacity|temperature|score|grade|charge|measure|size|age)s?")
_QUANTITY_QUESTION = re.compile(
    r"\bwhat(?:'s|\u2019s|\s+(?:is|was|are|were|will|would|should|does|did))\s[^?.\n]{0,60}?\b" + _QUANTITY
    + r"\b[^.\n]{0,120}\?|\bwhat\s+(?:speed|score|temperature|floor|place|size|weight|price|age|number)\b"
    r"[^.\n]{0,120}\?|\bhow\s+(?:tall|big|high|far|old|fast|heavy|wide|deep|large|long|short)\b[^.\n]{0,120}\?"
    r"|\b(?:find|calculate|compute|determine)\s+(?:the|her|his|their|its)\s[^?.\n]{0,40}?\b" + _QUANTITY + r"\b",
    re.IGNORECASE)
_DIGITS = re.compile(r"\d")
_QUESTION_CHARS = 400       # a quantity question is the prompt's last: a passage's questions are not


def prompt_kind(prompt: str | None) -> str:
    """What the prompt asks for: ``choice`` (options listed), ``code``, ``number`` (a numeric question,
    including word problems that name the quantity: "what's her annual salary?") or ``text``. A request
    to predict what given code outputs ("assert f(3) == ??", "what is the output") is ``text``: its answer
    is a short value, compared as one (a final ``assert ... == X`` reads X), not a program."""
    if not prompt:
        return "text"
    if is_multiple_choice(prompt):
        return "choice"
    if is_output_request(prompt):
        return "text"
    if _CODE_REQUEST.search(prompt):
        return "code"
    asks = _COMPUTE_CUE.search(prompt) or _QUANTITY_QUESTION.search(prompt[-_QUESTION_CHARS:])
    if _NUMERIC_CUE.search(prompt) or (asks and _DIGITS.search(prompt)):
        return "number"
    return "text"


def answer_kind(prompt: str | None) -> str:
    """The extractor ``auto`` uses: ``choice``, ``number`` or ``text`` (code is compared as text,
    which abstains on anything longer than a one-liner)."""
    kind = prompt_kind(prompt)
    return "text" if kind == "code" else kind


def parse_kind(kind: str) -> tuple[str, str]:
    """``(base, field)`` of an ``extract:`` value; ValueError for an unknown kind."""
    base, sep, field = kind.partition(":")
    if base not in KINDS or (sep and (base != "json" or not field)):
        raise ValueError(f"unknown answer kind {kind!r}: expected auto, choice, number, text, json or json:<field>")
    return base, field


def extract(text: str, kind: str, prompt: str | None = None) -> str | None:
    """The final answer of ``kind`` in ``text``, normalised, or None when there is none."""
    base, field = parse_kind(kind)
    if base == "auto":
        base = answer_kind(prompt)
    if not text or not text.strip():
        return None
    if base == "choice":
        return extract_choice(text, prompt)
    if base == "number":
        return extract_number(text)
    if base == "json":
        return extract_json(text, field)
    if is_output_request(prompt):
        return extract_output(text)
    return extract_text(text)


def agree(a: str, b: str, kind: str, prompt: str | None = None) -> bool | None:
    """Whether two answers give the same final answer; None when either has none to compare."""
    base, _ = parse_kind(kind)
    resolved = answer_kind(prompt) if base == "auto" else kind
    first = extract(a, resolved, prompt)
    second = extract(b, resolved, prompt) if first is not None else None
    if first is None or second is None:
        return None
    return first == second


@functools.lru_cache(maxsize=256)
def final_answer_failure(prompt: str | None, answer: str | None) -> str | None:
    """``no_number`` when a non-empty answer to a numeric prompt states no final number, ``no_output`` when
    one to a prompt that asks what code outputs states no output; else None (other kinds: never).
    Cached for the last pairs: a check asks whether the checker judges a pair, then scores it, and both
    read this (~0.1 ms a pair)."""
    if not prompt or not answer or not answer.strip():
        return None
    kind = prompt_kind(prompt)
    if kind == "number":
        return "no_number" if extract_number(answer) is None else None
    if kind == "text" and is_output_request(prompt):
        return "no_output" if extract_output(answer) is None else None
    return None


CHECKER_MIN_WORDS = 20


def checker_judges(prompt: str | None, answer: str | None) -> bool:
    """Whether the shipped answer checker can judge this answer: it learned multiple-choice answers that
    reason before their letter (MMLU-Pro); on a shorter multiple-choice answer only its rules speak (no
    stated letter, a refusal: score 1.0; RouterBench's bare answers that fail them score 0 while GPT-4's
    answers there score 0.96, `python benchmarks/bench_checker_kinds.py`), and on code, numbers or open
    text its score says nothing (it flags almost every correct one): there only the rule that a numeric or
    output-prediction answer must state its final answer speaks (:func:`final_answer_failure`, score 1.0).
    Elsewhere it abstains."""
    if not answer:
        return False
    if prompt_kind(prompt) != "choice":
        return final_answer_failure(prompt, answer) is not None
    return len(answer.split()) >= CHECKER_MIN_WORDS or rule_failure(prompt or "", answer) is not None
