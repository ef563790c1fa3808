"""Cache keys: a digest of the canonical request, within its scope.

The exact key covers every message (system prompt included), every parameter that can change the
answer (tools, tool_choice, response_format, temperature, top_p, max_tokens, seed, stop, ... — all of
them but the few that only change how the answer is delivered), the policy's name and a digest of its
content (a changed policy misses), and the user under ``scope: user``.

The semantic *bucket* is the same digest with the last user message's text left out: a semantic
match is only looked for among requests that agree on everything else (system prompt, tools,
earlier turns, sampling, policy, user), so that a near-identical question never borrows an answer
given under another system prompt, other tools or to another user.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from policies.schema import Policy

# Parameters that do not change the answer's content: how it is delivered, who is billed.
DELIVERY_PARAMS = frozenset({"stream", "stream_options", "user", "metadata", "timeout", "session_id"})
_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=repr).encode


def digest(doc: Any) -> str:
    return hashlib.sha256(_dumps(doc).encode("utf-8", "surrogatepass")).hexdigest()


def policy_digest(policy: Policy) -> str:
    """A digest of the policy's whole content (any change to it invalidates its cache entries)."""
    return hashlib.sha256(policy.model_dump_json(by_alias=True).encode()).hexdigest()


def answer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in DELIVERY_PARAMS}


def request_digest(messages: Sequence[Any], params: Mapping[str, Any]) -> str | None:
    """The digest of the request alone (no policy, no scope): what a trace line records (None for a
    request that is not a list of messages, or not JSON-like: the planner refuses those)."""
    if not isinstance(messages, (list, tuple)):
        return None
    try:
        return digest({"messages": list(messages), "params": answer_params(params)})
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CacheKeys:
    exact: str
    bucket: str | None       # the semantic bucket (None: no user message to compare)
    query: str | None        # the last user message's text, the one a semantic match compares


def cache_keys(policy_name: str, policy_sha: str, scope: str, user: str | None, messages: Sequence[Any],
               params: Mapping[str, Any]) -> CacheKeys:
    """The request's keys (TypeError / ValueError for messages that are not JSON-like)."""
    if not isinstance(messages, (list, tuple)):
        raise TypeError("messages must be a list")
    where = {"policy": policy_name, "policy_sha256": policy_sha, "scope": scope,
             "user": user if scope == "user" else None, "params": answer_params(params)}
    exact = digest({**where, "messages": list(messages)})
    last = _last_user(messages)
    if last is None:
        return CacheKeys(exact, None, None)
    text = _text_of(messages[last].get("content"))
    if text is None:
        return CacheKeys(exact, None, None)
    masked = [dict(m, content="\x00query\x00") if i == last else m for i, m in enumerate(messages)]
    return CacheKeys(exact, digest({**where, "messages": masked, "semantic": True}), text)


def _last_user(messages: Sequence[Any]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, Mapping) and m.get("role") == "user":
            return i
    return None


def _text_of(content: Any) -> str | None:
    """The text of a user message made of text only (one with images or files is matched exactly)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(p, Mapping) and p.get("type") == "text"
                                                     for p in content):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None
