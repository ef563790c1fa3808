"""The final number of an answer (``extract(text, "number")``; pure: no I/O, no state).

In order, the first that reads a number wins:

1. a final-answer marker: "#### 42", the last ``\\boxed{...}``, "the answer is 1,234.50" / "Answer: $18" /
   "The answer is: 18" (the first number after the last such cue);
2. the last line (markdown ``**``, ``$`` and GSM8K's ``<<6*3=18>>`` calculator notes dropped), read as:
   an equation's end ("... = 42 apples": one number after the last "=" or "≈"); a concluding sentence with one
   number ("So 42", "Therefore, Jill has 9 llamas."); a finished sentence that states one result ("Fawn has
   28 books.", "... the cost per serving is $2.00.", "The total inner volume of all 3 boxes is 72 cubic
   inches." -> 72: the one number after the last "is/are/was/has/will be/equals/comes to", else the
   sentence's only number); a line that is one number, maybe labelled or bold ("**18**", "Total: $18");
3. the last number of a one-line reply of at most :data:`SHORT_REPLY_WORDS` words ("6 times 7 is 42.").

Never a stray number of the reasoning: a sentence that plans or narrates a step ("We can solve this in 3
steps.", "Then she sells a third of them, which takes 3 steps."), a question, an unfinished sentence (an
answer cut off mid-computation) or a sentence with several numbers and no single result states no answer.
Canonical form: thousands commas, ``$`` and ``%`` dropped, the unicode minus read as "-", fractions and
decimals as exact rationals, written as an integer ("3.0" -> "3"), a terminating decimal ("1/2" -> "0.5")
or a reduced fraction ("2/6" -> "1/3").
"""
from __future__ import annotations

import re
from fractions import Fraction

SHORT_REPLY_WORDS = 12
_TAIL = 4000  # final answers are searched for in the answer's last characters
_BOXED_CHARS = 400  # a \boxed{...} longer than this is not read

_NUM = r"[-\u2212]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d{1,3})?|[-\u2212]?\.\d+"
# a number, then "/ number" (a fraction) or "x 10^k" (scientific notation)
_NUMBER = re.compile(r"(?<![\w.])(" + _NUM + r")(?:\s*/\s*(" + _NUM + r")|\s*(?:\\times|\\cdot|\u00d7|x|\*)\s*"
                     r"10\s*\^\s*\{?\s*([-\u2212]?\d{1,3})\s*\}?)?(?![\d])")
_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_NUMBER_CUE = re.compile(r"(?i:answer\s+is|answer\s*:|answer\s+would\s+be)([^\n]*)")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}|\\[,!;: ]|\{,\}|\\left|\\right")


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{...}`` (nested braces balanced, at most _BOXED_CHARS), in order."""
    out = []
    for match in re.finditer(r"\\boxed\s*\{", text):
        depth, start = 1, match.end()
        for i in range(start, min(len(text), start + _BOXED_CHARS)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                out.append(text[start:i])
                break
    return out


def delatex(text: str) -> str:
    text = _LATEX_NOISE.sub(lambda m: m.group(1) or "", text)
    return _LATEX_FRAC.sub(r"\1/\2", text).replace("\\%", "%").replace("\\$", "$")


def _to_fraction(raw: str) -> Fraction:
    cleaned = raw.replace("\u2212", "-").replace("$", "").replace(",", "").replace(" ", "")
    return Fraction(cleaned)


def canonical_number(value: Fraction) -> str:
    """An integer, a terminating decimal, or a reduced fraction ``p/q``."""
    if value.denominator == 1:
        return str(value.numerator)
    rest = value.denominator
    for p in (2, 5):
        while rest % p == 0:
            rest //= p
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    while (value * 10 ** digits).denominator != 1:
        digits += 1
    sign, scaled = "-" if value < 0 else "", str(abs(value.numerator) * 10 ** digits // value.denominator)
    scaled = scaled.rjust(digits + 1, "0")
    return f"{sign}{scaled[:-digits]}.{scaled[-digits:]}"


def _number_value(match: re.Match[str]) -> str | None:
    try:
        value = _to_fraction(match.group(1))
        if match.group(2):
            value /= _to_fraction(match.group(2))
        if match.group(3):
            value *= Fraction(10) ** int(match.group(3).replace("\u2212", "-"))
    except (ValueError, ZeroDivisionError):
        return None
    return canonical_number(value)


def _first_number(region: str) -> str | None:
    """The first number of a short final-answer region ("42 apples", "\\frac{3}{4}")."""
    for match in _NUMBER.finditer(delatex(region)):
        found = _number_value(match)
        if found is not None:
            return found
    return None


def _numbers(text: str) -> list[str]:
    """Every number of ``text`` (LaTeX read first), canonical, in order."""
    return [n for n in map(_number_value, _NUMBER.finditer(delatex(text))) if n is not None]


_RESULT_SIGN = re.compile(r"=|\u2248|\\approx")


def _equation_result(line: str) -> str | None:
    """N of a line that ends an equation: "... = N [unit]" (one number after the last "=" or "≈")."""
    parts = _RESULT_SIGN.split(delatex(line))
    if len(parts) < 2:
        return None
    found = [n for n in map(_number_value, _NUMBER.finditer(parts[-1])) if n is not None]
    return found[0] if len(found) == 1 else None


_CONCLUSION = re.compile(r"^\W*(?:so|thus|therefore|hence|in total|in all|altogether|finally|overall)\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _concluding_number(line: str) -> str | None:
    """N of a last sentence that concludes ("So 42", "Therefore, Jill has 9 llamas.") with one number."""
    sentence = _SENTENCE_END.split(line.strip())[-1]
    if not _CONCLUSION.match(sentence):
        return None
    found = _numbers(sentence)
    return found[0] if len(found) == 1 else None


def _short_reply_number(text: str) -> str | None:
    """The last number of a one-line reply of at most SHORT_REPLY_WORDS words ("6 times 7 is 42.")."""
    if "\n" in text.strip() or len(text.split()) > SHORT_REPLY_WORDS:
        return None
    found = _numbers(text)
    return found[-1] if found else None


_CALCULATOR_NOTE = re.compile(r"<<[^<>\n]*>>")        # GSM8K's "<<6*3=18>>18"
_MARKDOWN = re.compile(r"\*\*|__|`")
# a sentence that plans or narrates a step of the reasoning, not its result
_STEP = re.compile(r"^\W*(?:we|i|let(?:'s)?|then|first|next|to|if|step|suppose|assume|after)\b", re.I)
# the verb that states a result: the number after the last one is the result
_COPULA = re.compile(r"\b(?:is|are|was|were|be|has|have|had|equals?|equal to|comes? to|amounts? to|totals?)\b|=", re.I)
_LISTED = re.compile(r"^\s*(?:and|or|but|plus|with|which)\b", re.I)   # not a main clause
_ASIDE = re.compile(r"\s*\([^()]*\)")       # "the remainder is 0 (as the 2 in 5k + 2 shows)."
_LEADING_NUMBER = re.compile(r"\s*(?:approximately|about|roughly|around|exactly|only|just|nearly|almost|a total of)?"
                             r"\s*(" + _NUM + r")")
# what makes a leading number part of a computation or a list, not the result ("is 12, and then 30 more ...")
_CONTINUED = re.compile(r"\s*,?\s*(?:and|plus|then|minus|times|\+|-|\*|\u00d7|/|x\b)", re.I)
_LIST = re.compile(r"[^.;]*?(?:,|\band\b|&)\s*\$?\d")          # "has 3 cats, 2 dogs and 5 fish"
_FINISHED = re.compile(r"[.!]\W*$")
_LABELLED_NUMBER = re.compile(r"^[\s#>*_]*(?:[A-Za-z][\w ()'-]{0,40}:\s*)?[*_]*\s*(" + _NUM + r")\s*%?"
                              r"(?:\s+[A-Za-z]+){0,2}\s*[*_]*\s*\.?\s*$")


def _stated_result(line: str) -> str | None:
    """N of a last sentence that states one result: "Fawn has 28 books.", "The total inner volume of all 3
    boxes is 72 cubic inches." (the one number after the last "is/are/was/equals...", or the number that
    follows it when the rest qualifies it: "is approximately 0.3056, or 30.56%"), a sentence whose
    numbers are all one, or the one number of its main clause after a leading "Since ..., " / "So, in 4
    weeks, "; else None."""
    sentence = _SENTENCE_END.split(line.strip())[-1]
    if not _FINISHED.search(sentence) or _STEP.match(sentence):
        return None
    sentence = _ASIDE.sub("", sentence)
    verbs = list(_COPULA.finditer(sentence))
    region = sentence[verbs[-1].end():] if verbs else ""
    after = _numbers(region)
    if len(after) == 1:
        return after[0]
    lead = _LEADING_NUMBER.match(region)          # "is 19 integers that satisfy |x + 5| < 10": 19
    if after and lead and not _CONTINUED.match(region, lead.end()) and not _LIST.match(region[lead.end():]):
        return _first_number(lead.group(1))
    found = _numbers(sentence)
    if len(set(found)) == 1:                 # "he has 44 t-shirts, which means he has 44 blocks"
        return found[0]
    main = sentence.rsplit(",", 1)[-1]      # "Since one box holds 24 smores, they will need 1 box."
    if len(found) > 1 and "," in sentence and not _LISTED.match(main):
        clause = _numbers(main)
        return clause[0] if len(clause) == 1 else None
    return None


def _labelled_number(line: str) -> str | None:
    """N of a last line that is one number, maybe labelled, bold or with a unit ("**18**", "Total: $18")."""
    match = _LABELLED_NUMBER.match(line)
    return _first_number(match.group(1)) if match else None


def extract_number(text: str) -> str | None:
    """The answer's final number, canonical (see the module docstring), or None when it states none."""
    tail = text[-_TAIL:]
    for found in (_HASHES.findall(tail), boxed_contents(tail), _ANSWER_NUMBER_CUE.findall(tail)):
        number = _first_number(found[-1]) if found else None
        if number is not None:
            return number
    lines = [line for line in tail.splitlines() if line.strip(" \t$*")]
    last = _MARKDOWN.sub("", _CALCULATOR_NOTE.sub("", lines[-1])) if lines else ""
    return (_equation_result(last) or _concluding_number(last) or _stated_result(last) or _labelled_number(last)
            or _short_reply_number(tail))
