"""The cheap model's own confidence, from the token logprobs its provider returned (pure: no I/O).

    confidence_of(tokens, text, prompt=None) -> Confidence | None     None: no logprobs were given

Per answer: the mean and the minimum token logprob, and the final answer's margin: top-1 minus
top-2 logprob at the token where the extracted final answer (:func:`classifiers.extract.extract`,
kind from the prompt) starts. The margin is None when no final answer was found in the text, or the
provider sent fewer than two alternatives for that token.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its logprob, and the logprobs of the top alternatives
    (best first, the token itself usually among them)."""

    token: str
    logprob: float
    top: tuple[float, ...] = ()


@dataclass(frozen=True)
class Confidence:
    mean_logprob: float
    min_logprob: float
    answer_margin: float | None
    n_tokens: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean_logprob": self.mean_logprob, "min_logprob": self.min_logprob,
                "answer_margin": self.answer_margin, "n_tokens": self.n_tokens}


def confidence_of(tokens: Sequence[TokenLogprob] | None, text: str, prompt: str | None = None) -> Confidence | None:
    """The confidence of ``text`` from its tokens' logprobs; None when there are none (or none finite)."""
    finite = [t for t in tokens or () if math.isfinite(t.logprob)]
    if not finite:
        return None
    values = [t.logprob for t in finite]
    return Confidence(sum(values) / len(values), min(values), answer_margin(finite, text, prompt), len(values))


def answer_margin(tokens: Sequence[TokenLogprob], text: str, prompt: str | None = None) -> float | None:
    """top-1 minus top-2 logprob at the token where the final answer starts (None: not found)."""
    at = answer_offset(text, prompt)
    if at is None:
        return None
    token = token_at(tokens, at)
    if token is None or len(token.top) < 2:
        return None
    best = sorted(token.top, reverse=True)
    return float(best[0] - best[1])


def answer_offset(text: str, prompt: str | None = None) -> int | None:
    """Character offset in ``text`` of the last occurrence of its extracted final answer."""
    from classifiers.extract import answer_kind, extract
    kind = answer_kind(prompt)
    found = extract(text, kind, prompt)
    if not found:
        return None
    at = text.rfind(found)
    if at < 0:
        at = text.lower().rfind(found.lower())
    if at < 0 and kind == "number":
        numbers = [m for m in _NUMBER.finditer(text) if m.group().replace(",", "").lstrip("-").rstrip(".")]
        at = numbers[-1].start() if numbers else -1
    return at if at >= 0 else None


def token_at(tokens: Sequence[TokenLogprob], offset: int) -> TokenLogprob | None:
    """The token covering character ``offset`` of the concatenated token texts (leading spaces of a
    token belong to it, so the token whose visible text starts there is chosen)."""
    pos = 0
    for token in tokens:
        end = pos + len(token.token)
        if offset < end:
            return token
        pos = end
    return None
