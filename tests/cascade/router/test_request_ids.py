"""Request ids of a Router built with ``seed=``: the same traffic in the same order gets the same ids,
and so the same shadow sample, run after run (what makes a seeded benchmark reproducible); other seeds
and unseeded Routers get ids of their own. Against the local fake provider, real traces."""
from __future__ import annotations

import re

import pytest

from cascade.budget import open_budget_store
from cascade.router import Router
from cascade.trace import read_trace_records
from policies.errors import InvalidRequestError
from policies.loader import parse_policy
from tests.harness.fake_provider import answer

from .conftest import FixedScore, Sleeps, provider_env, user_msg

N = 16
SHADOWED = parse_policy("extends: default\nname: shadowed\nshadow: {rate: 0.5, models: [gpt-4o], "
                        "budget_usd_per_day: 5.0, drain_s: 30}\n", source="shadowed.yaml")


async def run_traffic(fake_provider, trace_path, seed: int | None) -> tuple[list[str], list[str]]:
    """The request ids of N requests, in order, and those the shadow sampled (from the trace), in that order."""
    store = open_budget_store("memory://")
    options = {} if seed is None else {"seed": seed}
    router = Router(SHADOWED, classifier=FixedScore(0.1), env=provider_env(fake_provider.url), budget_store=store,
                    sleep=Sleeps(), trace_path=trace_path, **options)
    ids = []
    for i in range(N):
        resp = await router.acomplete(user_msg(f"Calculate {i} times 7."), user="alice")
        ids.append(resp.cascade.request_id)
    await router.aclose()
    store.close()
    lines = read_trace_records(trace_path)
    assert [d["request_id"] for d in lines if d.get("kind") != "shadow"] == ids
    shadowed = [d["request_id"] for d in lines if d.get("kind") == "shadow"]    # in the order they finished
    return ids, sorted(shadowed, key=ids.index)


def distinct_hex_ids(ids: list[str]) -> bool:
    return len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


async def test_the_same_seed_gives_the_same_ids_and_shadow_sample_and_other_seeds_differ(fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("It is 42."))
    fake_provider.script("gpt-4o", answer("42"))
    ids, shadowed = await run_traffic(fake_provider, tmp_path / "a.jsonl", seed=5)
    again, shadowed_again = await run_traffic(fake_provider, tmp_path / "b.jsonl", seed=5)
    other, shadowed_other = await run_traffic(fake_provider, tmp_path / "c.jsonl", seed=6)
    assert distinct_hex_ids(ids) and distinct_hex_ids(other)
    assert again == ids and shadowed_again == shadowed
    assert 0 < len(shadowed) < N                                   # a sample, not all or nothing
    assert not set(other) & set(ids)
    assert [ids.index(i) for i in shadowed] != [other.index(i) for i in shadowed_other]
    assert fake_provider.tally["gpt-4o"].n_completions == 2 * len(shadowed) + len(shadowed_other)


async def test_without_a_seed_every_request_gets_a_fresh_random_id(fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("It is 42."))
    fake_provider.script("gpt-4o", answer("42"))
    ids, _ = await run_traffic(fake_provider, tmp_path / "a.jsonl", seed=None)
    again, _ = await run_traffic(fake_provider, tmp_path / "b.jsonl", seed=None)
    assert distinct_hex_ids(ids + again)


async def test_a_request_refused_before_planning_takes_the_next_seeded_id_too(fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("It is 42."))
    runs = []
    for name in ("a", "b"):
        router = Router("default", classifier=FixedScore(0.1), env=provider_env(fake_provider.url),
                        budget_store="memory://", trace_path=tmp_path / f"{name}.jsonl", seed=3)
        await router.acomplete(user_msg("Calculate 6 times 7."))
        with pytest.raises(InvalidRequestError):
            await router.acomplete(user_msg("Calculate 6 times 7."), session_id="")     # refused: a bad session id
        await router.acomplete(user_msg("Calculate 6 times 8."))
        await router.aclose()
        lines = read_trace_records(tmp_path / f"{name}.jsonl")
        assert [d["outcome"] for d in lines] == ["ok", "refused", "ok"]
        runs.append([d["request_id"] for d in lines])
    assert runs[0] == runs[1] and distinct_hex_ids(runs[0])
