"""The policy's response-cache and session-pinning sections: pure, strict, frozen.

    cache:                                   # absent: no response cache (the default)
      store: memory://                       # memory:// | sqlite:///path.db | redis://host:6379/0
      ttl_s: 3600
      scope: user                            # user: answers are shared only within one user; global: by all
      temperature_any: false                 # true: cache sampled answers too (temperature > 0 or unset)
      max_entries: 10000                     # memory:// only: least recently used entries go first
      semantic:                              # optional: near-identical last user messages hit too
        embedding_model: text-embedding      # a catalog alias with the ``embeddings`` capability
        threshold: 0.95                      # cosine similarity at or above which a stored answer is reused
    sessions:                                # session pinning (on by default; used when a request names a session)
      enabled: true
      pin_ttl_s: 1800
      store: memory://

Which requests are cacheable is a rule of its own (:func:`cacheable_temperature`): OpenAI's and
DeepSeek's default temperature is 1, so a request that does not set ``temperature`` samples, and is
cached only under ``temperature_any: true``, like any request with ``temperature > 0``.
"""
from __future__ import annotations

from typing import Annotated, Any, Collection, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

STORE_SCHEMES = ("memory://", "sqlite:///", "redis://", "rediss://")
EMBEDDINGS = "embeddings"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _store_url(v: str) -> str:
    if not isinstance(v, str) or not v.startswith(STORE_SCHEMES):
        raise ValueError(f"store must be a URL starting with one of {', '.join(STORE_SCHEMES)}, got {v!r}")
    if v.startswith("memory://") and v != "memory://":
        raise ValueError(f"memory:// takes no path or options, got {v!r}")
    if v.startswith("sqlite:///") and (len(v) == len("sqlite:///") or "?" in v):
        raise ValueError(f"expected sqlite:///relative.db, sqlite:////abs/path.db or sqlite:///~/x.db, got {v!r}")
    return v


class SemanticConfig(_Strict):
    embedding_model: str = Field(min_length=1)
    threshold: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 0.95


class CacheConfig(_Strict):
    store: str = "memory://"
    ttl_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 3600.0
    scope: Literal["user", "global"] = "user"
    temperature_any: bool = False
    max_entries: Annotated[int, Field(ge=1)] = 10_000
    semantic: SemanticConfig | None = None

    @field_validator("store")
    @classmethod
    def _url(cls, v: str) -> str:
        return _store_url(v)


class SessionConfig(_Strict):
    enabled: bool = True
    pin_ttl_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1800.0
    store: str = "memory://"

    @field_validator("store")
    @classmethod
    def _url(cls, v: str) -> str:
        return _store_url(v)


def cache_problems(cache: CacheConfig | None, capabilities: Mapping[str, Collection[str]]) -> list[tuple[str, str]]:
    """Cross-field problems, as (field path, message): a semantic cache names a catalog model that
    serves embeddings."""
    if cache is None or cache.semantic is None:
        return []
    alias = cache.semantic.embedding_model
    if alias not in capabilities:
        return [("cache.semantic.embedding_model", f"unknown model {alias!r}; catalog has: "
                 f"{', '.join(sorted(capabilities))}")]
    if EMBEDDINGS not in capabilities[alias]:
        return [("cache.semantic.embedding_model", f"model {alias!r} lacks capability {EMBEDDINGS!r}")]
    return []


def cacheable_temperature(params: Mapping[str, Any], temperature_any: bool) -> bool:
    """Whether a request's sampling lets its answer be cached: ``temperature`` 0 (and one choice), or
    any temperature when the policy says ``temperature_any``. Unset counts as the providers' default, 1."""
    n = params.get("n")
    if n not in (None, 1):
        return False
    if temperature_any:
        return True
    t = params.get("temperature")
    return isinstance(t, (int, float)) and not isinstance(t, bool) and t == 0
