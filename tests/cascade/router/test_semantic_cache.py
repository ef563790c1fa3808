"""The semantic cache through the Router: vectors from the fake provider's /v1/embeddings (through
litellm's aembedding, or the direct transport), cosine within a bucket that fixes everything but the
last user message. Tests for the peer's bugs: no false hit across system prompts, tools or users
(vllm-project/semantic-router#1581, #3423)."""
from __future__ import annotations

import asyncio

import pytest

from policies.loader import parse_policy
from tests.harness.fake_provider import answer, http_error

from .conftest import user_msg

EMBEDDING_MODEL = "text-embedding-3-small"


def semantic_policy(transport: str = "litellm", threshold: float = 0.9, scope: str = "user",
                    embedding_timeout_s: float | None = None):
    timeout = f"\n    timeout_s: {embedding_timeout_s}" if embedding_timeout_s is not None else ""
    return parse_policy(f"""extends: default
name: semantic
catalog:
  text-embedding:
    litellm_model: openai/{EMBEDDING_MODEL}
    api_base_env: OPENAI_API_BASE
    api_key_env: OPENAI_API_KEY
    price: {{input_per_1m: 0.02, output_per_1m: 0.0}}
    context_window: 8192
    capabilities: [embeddings]
    strength: 0
    transport: {transport}{timeout}
cache: {{store: 'memory://', scope: {scope}, semantic: {{embedding_model: text-embedding, threshold: {threshold}}}}}
""", source="semantic.yaml")


def chat_calls(fake_provider) -> int:
    return fake_provider.tally.n_requests - fake_provider.tally[EMBEDDING_MODEL].n_requests


@pytest.mark.parametrize("transport", ["litellm", "direct"])
async def test_a_reworded_question_hits(make_router, fake_provider, transport):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(semantic_policy(transport), score=0.1)
    await router.acomplete(user_msg("What is the capital of France?"), temperature=0)
    got = await router.acomplete(user_msg("what is the capital of france"), temperature=0)
    assert got.cascade.cache_hit and got.choices[0].message.content == "Paris"
    assert chat_calls(fake_provider) == 1
    assert fake_provider.tally[EMBEDDING_MODEL].n_requests == 2       # one per lookup; the store reuses it
    words = len("what is the capital of france".split())             # the fake counts one token per word
    assert got.cascade.cache_embedding_usd == pytest.approx(words * 0.02 / 1e6) and got.cascade.cost_usd == 0


async def test_a_different_question_below_the_threshold_misses(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("an answer"))
    router = make_router(semantic_policy(threshold=0.9), score=0.1)
    await router.acomplete(user_msg("What is the capital of France?"), temperature=0)
    got = await router.acomplete(user_msg("What is the capital of Germany?"), temperature=0)
    assert not got.cascade.cache_hit and chat_calls(fake_provider) == 2


SCOPED = [
    ("system prompt", dict(messages=[{"role": "system", "content": "You are a pirate."},
                                     *user_msg("what is the capital of france")])),
    ("tools", dict(tools=[{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}])),
    ("user", dict(user="mallory")),
    ("earlier turn", dict(messages=[*user_msg("Let's talk about Texas."), {"role": "assistant", "content": "Sure."},
                                    *user_msg("what is the capital of france")])),
]


@pytest.mark.parametrize("what,change", SCOPED, ids=[s[0] for s in SCOPED])
async def test_no_false_semantic_hit_across_system_prompts_tools_or_users(make_router, fake_provider, what, change):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(semantic_policy(), score=0.1)
    await router.acomplete(user_msg("What is the capital of France?"), user="alice", temperature=0)
    change = dict(change)
    messages = change.pop("messages", user_msg("what is the capital of france"))
    got = await router.acomplete(messages, user=change.pop("user", "alice"), temperature=0, **change)
    assert not got.cascade.cache_hit, what
    assert chat_calls(fake_provider) == 2


async def test_global_scope_matches_across_users(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    router = make_router(semantic_policy(scope="global"), score=0.1)
    await router.acomplete(user_msg("What is the capital of France?"), user="alice", temperature=0)
    got = await router.acomplete(user_msg("what is the capital of france"), user="bob", temperature=0)
    assert got.cascade.cache_hit


async def test_a_failing_embedding_model_leaves_exact_matching(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    fake_provider.script(EMBEDDING_MODEL, http_error(500))
    router = make_router(semantic_policy(), score=0.1)
    await router.acomplete(user_msg("What is the capital of France?"), temperature=0)
    reworded = await router.acomplete(user_msg("what is the capital of france"), temperature=0)
    same = await router.acomplete(user_msg("What is the capital of France?"), temperature=0)
    assert not reworded.cascade.cache_hit and same.cascade.cache_hit
    assert router.recall.cache.counts["embedding_errors"] >= 2 and chat_calls(fake_provider) == 2


# ---- the embedding call is paid for like any call ------------------------------------------------------------

async def test_the_embedding_call_is_reserved_and_committed_against_the_principals_caps(make_router, fake_provider):
    from cascade import Principal
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=10, completion_tokens=5))
    router = make_router(semantic_policy(), score=0.1, user_cap_usd=1.0, team_cap_usd=1.0, cap_window="day")
    alice = Principal("alice", team="ml")
    first = await router.acomplete(user_msg("What is the capital of France?"), user=alice, temperature=0)
    trace = first.cascade
    words = len("What is the capital of France?".split())
    assert trace.cache_embedding_usd == pytest.approx(words * 0.02 / 1e6)
    entries = router.store.ledger(request_id=trace.request_id)
    assert sorted(e.model for e in entries) == ["deepseek-v2", "text-embedding"]
    [embedding] = [e for e in entries if e.model == "text-embedding"]
    assert embedding.user == "alice" and embedding.cost_usd == pytest.approx(trace.cache_embedding_usd)
    spent = trace.cost_usd + trace.cache_embedding_usd
    assert router.store.total_spent(user="alice") == pytest.approx(spent)
    usages = router.store.snapshot(user=alice, caps=router.caps).usages
    assert {u.cap.scope: u.spent_usd for u in usages} == pytest.approx({"user": spent, "team": spent})


async def test_a_user_over_the_cap_makes_no_embedding_call(make_router, fake_provider, tmp_path):
    from policies.errors import BudgetExceeded
    from cascade.trace import read_traces
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=10, completion_tokens=100_000))
    router = make_router(semantic_policy(), score=0.1, user_cap_usd=0.02, cap_window="day")
    await router.acomplete(user_msg("What is the capital of France?"), user="bob", temperature=0, max_tokens=16)
    embedded = fake_provider.tally[EMBEDDING_MODEL].n_requests
    with pytest.raises(BudgetExceeded):
        await router.acomplete(user_msg("What is the capital of Spain?"), user="bob", temperature=0, max_tokens=16)
    assert fake_provider.tally[EMBEDDING_MODEL].n_requests == embedded == 1
    assert router.recall.cache.counts["embedding_refused"] == 1
    refused = read_traces(tmp_path / "traces.jsonl")[-1]
    assert refused["outcome"] == "refused" and refused["cache"] == "miss" and "cache_embedding_usd" not in refused
    assert [e.model for e in router.store.ledger(request_id=refused["request_id"])] == []


async def test_a_failed_embedding_call_is_released_not_charged(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    fake_provider.script(EMBEDDING_MODEL, http_error(500))
    router = make_router(semantic_policy(), score=0.1, user_cap_usd=1.0, cap_window="day")
    got = await router.acomplete(user_msg("What is the capital of France?"), user="carol", temperature=0)
    assert got.cascade.cache_embedding_usd == 0.0
    assert [e.model for e in router.store.ledger(request_id=got.cascade.request_id)] == ["deepseek-v2"]
    assert router.store.open_reservations() == 0


@pytest.mark.parametrize("transport", ["litellm", "direct"])
async def test_an_embedding_answered_after_its_timeout_is_in_the_ledger(make_router, fake_provider, transport):
    """The embedding model answers after the timeout: the lookup goes on without a vector and the
    reservation is released at once, but the provider did the work: its cost reaches the ledger."""
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=10, completion_tokens=5))
    fake_provider.script(EMBEDDING_MODEL, answer(latency=0.5))   # after 0.2 s, within the 1 s grace
    router = make_router(semantic_policy(transport, embedding_timeout_s=0.2), score=0.1, user_cap_usd=1.0,
                         cap_window="day")
    got = await router.acomplete(user_msg("What is the capital of France?"), user="dave", temperature=0)
    trace = got.cascade
    assert trace.cache == "miss" and trace.cache_embedding_usd == 0.0      # no vector in time
    assert router.recall.cache.counts["embedding_errors"] == 1
    assert router.store.open_reservations() == 0
    assert [e.model for e in router.store.ledger(request_id=trace.request_id)] == ["deepseek-v2"]
    await router.gate.drain()                       # what Router.aclose() waits for
    entries = router.store.ledger(request_id=trace.request_id)
    [embedding] = [e for e in entries if e.model == "text-embedding"]
    words = len("What is the capital of France?".split())                 # the fake counts one token per word
    assert embedding.user == "dave" and embedding.cost_usd == pytest.approx(words * 0.02 / 1e6)
    assert router.store.total_spent(user="dave") == pytest.approx(trace.cost_usd + embedding.cost_usd)
    assert router.store.open_reservations() == 0


async def test_a_cancelled_request_still_records_its_late_embedding(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris"))
    fake_provider.script(EMBEDDING_MODEL, answer(latency=0.5))
    router = make_router(semantic_policy("direct"), score=0.1, user_cap_usd=1.0, cap_window="day")
    task = asyncio.create_task(router.acomplete(user_msg("What is the capital of Italy?"), user="erin",
                                                    temperature=0))
    for _ in range(3000):
        await asyncio.sleep(0.01)
        if fake_provider.tally[EMBEDDING_MODEL].n_requests == 1:
            break
    assert router.store.open_reservations() == 1    # the embedding call is at the provider, its reservation held
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert router.store.open_reservations() == 0
    await router.gate.drain()
    assert [e.model for e in router.store.ledger()] == ["text-embedding"]
    assert fake_provider.tally["deepseek-chat"].n_requests == 0
