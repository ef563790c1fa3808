"""Token logprobs as providers send them, read into :class:`classifiers.confidence.TokenLogprob`.

OpenAI-compatible providers (DeepSeek's API included) return them when the request says
``logprobs: true`` (with ``top_logprobs: N`` for the alternatives): ``choices[0].logprobs.content``,
a list of ``{token, logprob, top_logprobs: [{token, logprob}, ...]}``; a stream sends the same list
piecewise in each chunk's choice. The runtime asks for them only of catalog models that declare the
``logprobs`` capability (:func:`logprob_params`).
"""
from __future__ import annotations

from typing import Any, Iterable

from classifiers.confidence import TokenLogprob

TOP_LOGPROBS = 2          # top-1 and top-2: what the final answer's margin needs


def logprob_params(capabilities: Iterable[str], params: dict) -> dict:
    """``params`` with ``logprobs: true, top_logprobs: 2`` added for a model that can return them
    (a caller's own ``logprobs`` / ``top_logprobs`` are kept as given)."""
    if "logprobs" not in capabilities or "logprobs" in params:
        return params
    return {**params, "logprobs": True, "top_logprobs": max(TOP_LOGPROBS, int(params.get("top_logprobs") or 0))}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def tokens_of(choice_logprobs: Any) -> list[TokenLogprob] | None:
    """The tokens of a choice's ``logprobs`` (dict or object); None when the provider sent none."""
    content = _get(choice_logprobs, "content") if choice_logprobs is not None else None
    if not isinstance(content, list) or not content:
        return None
    out = []
    for item in content:
        logprob = _get(item, "logprob")
        if not isinstance(logprob, (int, float)) or isinstance(logprob, bool):
            continue
        top = tuple(float(v) for t in (_get(item, "top_logprobs") or ())
                    if isinstance(v := _get(t, "logprob"), (int, float)) and not isinstance(v, bool))
        out.append(TokenLogprob(str(_get(item, "token") or ""), float(logprob), top))
    return out or None


def choice_tokens(response: Any) -> list[TokenLogprob] | None:
    """The tokens of the first choice of a chat completion (dict or object)."""
    choices = _get(response, "choices") if response is not None else None
    if not choices:
        return None
    return tokens_of(_get(choices[0], "logprobs"))
