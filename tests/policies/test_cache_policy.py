"""The policy's cache and sessions sections (pure): validation with clear errors, the temperature
rule, and the engine's session pin (``decide(..., start_at=...)``)."""
from __future__ import annotations

import pytest

from policies.cache import CacheConfig, SessionConfig, cacheable_temperature
from policies.engine import decide
from policies.errors import ConfigError
from policies.loader import load_policy, parse_policy
from policies.request import Request

EMBEDDER = ("catalog:\n  embed: {litellm_model: openai/text-embedding-3-small, price: {input_per_1m: 0.02, "
            "output_per_1m: 0}, context_window: 8192, capabilities: [embeddings], strength: 0}\n")


def policy(text: str):
    return parse_policy("extends: default\nname: t\n" + text, source="t.yaml")


def test_cache_is_off_and_pinning_on_by_default():
    p = load_policy("default")
    assert p.cache is None and p.sessions == SessionConfig() and p.sessions.enabled
    assert p.sessions.pin_ttl_s == 1800 and p.sessions.store == "memory://"


def test_a_cache_section_with_defaults():
    c = policy("cache: {store: 'memory://'}\n").cache
    assert c == CacheConfig() and c.scope == "user" and not c.temperature_any and c.semantic is None


@pytest.mark.parametrize("text,where", [
    ("cache: {store: 'postgres://x'}\n", "store"),
    ("cache: {store: 'memory://?x=1'}\n", "store"),
    ("cache: {store: 'sqlite:///'}\n", "store"),
    ("cache: {ttl_s: 0}\n", "ttl_s"),
    ("cache: {scope: team}\n", "scope"),
    ("cache: {stor: 'memory://'}\n", "stor"),
    ("cache: {semantic: {embedding_model: gpt-4o, threshold: 0.9}}\n", "lacks capability 'embeddings'"),
    ("cache: {semantic: {embedding_model: nope}}\n", "unknown model 'nope'"),
    (EMBEDDER + "cache: {semantic: {embedding_model: embed, threshold: 1.5}}\n", "threshold"),
    ("sessions: {pin_ttl_s: -1}\n", "pin_ttl_s"),
    ("sessions: {store: 'file:///x'}\n", "store"),
])
def test_bad_sections_are_refused_naming_the_field(text, where):
    with pytest.raises(ConfigError) as err:
        policy(text)
    assert where in str(err.value) and "t.yaml" in str(err.value)


def test_a_semantic_cache_names_an_embeddings_model():
    c = policy(EMBEDDER + "cache: {semantic: {embedding_model: embed, threshold: 0.9}}\n").cache
    assert c.semantic.embedding_model == "embed" and c.semantic.threshold == 0.9


@pytest.mark.parametrize("params,any_,expected", [
    ({"temperature": 0}, False, True), ({"temperature": 0.0}, False, True), ({}, False, False),
    ({"temperature": 0.2}, False, False), ({"temperature": 0.2}, True, True), ({}, True, True),
    ({"temperature": 0, "n": 2}, True, False), ({"temperature": False}, False, False),
])
def test_the_temperature_rule(params, any_, expected):
    assert cacheable_temperature(params, any_) is expected


def _request() -> Request:
    return Request(text="hi", prompt_tokens=10, max_tokens=None)


@pytest.mark.parametrize("score,start_at,first,pinned", [
    (0.1, None, "deepseek-v2", False), (0.1, "gpt-4o", "gpt-4o", True), (0.1, "deepseek-v2", "deepseek-v2", False),
    (0.9, "deepseek-v2", "gpt-4o", False), (0.1, "deepseek-vl2", "deepseek-v2", False), (0.1, "nope", "deepseek-v2", False),
])
def test_the_engine_starts_at_the_pin_never_below_the_score(score, start_at, first, pinned):
    plan = decide(load_policy("default"), _request(), score, start_at=start_at)
    assert plan.attempts[0].model == first
    assert ("session pinned" in plan.reason) is pinned
    assert decide(load_policy("default"), _request(), score, start_at=start_at) == plan      # pure
