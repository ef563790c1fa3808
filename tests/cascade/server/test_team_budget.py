"""Budgets above the user: two ``cascade serve`` replicas (two processes) with one keys file — two users of
team 'ml' in org 'acme' — share a team day cap on one store (Redis, then SQLite). Under concurrent load from
both users on both replicas the team never spends more than its cap, every level's bucket holds the same
spend as the ledger, refusals name the team, and nothing stays reserved."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from cascade.budget import open_budget_store
from cascade.budget_report import budget_tree, tree_lines
from cascade.server.auth import load_keys
from policies.budget import Cap, Principal

PROMPT_TOKENS, COMPLETION_TOKENS, MAX_TOKENS = 20, 200, 220
COST = (PROMPT_TOKENS * 0.14 + COMPLETION_TOKENS * 0.28) / 1e6       # deepseek-v2's price in the default policy
TEAM_CAP = 40 * COST + COST / 2          # the real cost of 40 requests; worst-case reservations admit fewer at once
USER_CAP = 1.0                           # far above the team's: the team is what binds
N_REQUESTS = 240
ALICE, BOB = "sk-team-ml-alice-0001", "sk-team-ml-bob-00002"
KEYS_YAML = f"""keys:
  {ALICE}: {{user: alice, team: ml, org: acme}}
  {BOB}: {{user: bob, team: ml, org: acme, name: bob-ci}}
"""
SCRIPT = {"fallback": {"default": {"kind": "answer", "content": "A short answer.", "latency": 0.005,
                                   "prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS}}}


async def hammer(urls: list[str], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def one(i: int) -> httpx.Response:
            key = (ALICE, BOB)[i % 2]               # both users on both replicas
            body = {"model": "cascade", "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
                    "max_tokens": MAX_TOKENS}
            return await client.post(f"{urls[(i // 2) % len(urls)]}/v1/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {key}"})
        return await asyncio.gather(*(one(i) for i in range(n)))


def run_two_replicas(store_url: str, tmp_path, spawn_fake_provider, spawn_serve) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(KEYS_YAML)
    provider = spawn_fake_provider(SCRIPT)
    args = ["--policy", "default", "--budget-store", store_url, "--keys", str(keys), "--transport", "direct",
            "--team-cap-usd", repr(TEAM_CAP), "--user-cap-usd", repr(USER_CAP), "--cap-window", "day"]
    replicas = spawn_serve(provider.url, args, args)

    responses = asyncio.run(hammer([r.url for r in replicas], N_REQUESTS))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(ok) + len(refused) == N_REQUESTS, {r.status_code for r in responses}
    messages = {r.json()["error"]["message"] for r in refused}
    assert refused and all("team 'ml' day cap" in m or "the team 'ml' budget" in m for m in messages), messages
    assert {r.json()["cascade"]["user"] for r in ok} == {"alice", "bob"}
    caps = [Cap("team", "day", TEAM_CAP), Cap("user", "day", USER_CAP), Cap("org", "day", 1.0),
            Cap("key", "day", 1.0)]
    with open_budget_store(store_url) as store:
        spent = store.total_spent()
        assert store.open_reservations() == 0
        assert spent == pytest.approx(sum(r.json()["cascade"]["cost_usd"] for r in ok), abs=1e-9)
        team = store.snapshot(user=Principal(team="ml"), caps=caps[:1]).usages[0]
        assert team.spent_usd == pytest.approx(spent, abs=1e-9) and team.reserved_usd == 0
        assert team.spent_usd <= TEAM_CAP                          # never overspent
        assert team.spent_usd >= TEAM_CAP - 10 * COST              # and the cap was used, not refused early
        users = {u: store.snapshot(user=u, caps=caps[1:2]).usages[0].spent_usd for u in ("alice", "bob")}
        assert sum(users.values()) == pytest.approx(spent, abs=1e-9) and min(users.values()) > 0
        lines = tree_lines(budget_tree(store, tuple(caps[:2]), load_keys(keys).principals, now=time.time()))
    assert lines[1].startswith("  org acme") and lines[2].startswith("    team ml  day:")
    assert any(line.strip().startswith("key bob-ci") for line in lines)
    assert not any(ALICE in line or BOB in line for line in lines)        # key labels only, never a key
    print(f"\nteam cap ${TEAM_CAP:.6f}: {len(ok)} answered, {len(refused)} refused; team spent "
          f"${team.spent_usd:.6f} ({team.spent_usd / TEAM_CAP:.1%}); {users}")


@pytest.mark.redis
@pytest.mark.slow
def test_two_replicas_share_a_team_cap_on_redis(redis_url, tmp_path, spawn_fake_provider, spawn_serve):
    import redis
    store_url = redis_url.rsplit("/", 1)[0] + "/2"
    redis.Redis.from_url(store_url).flushdb()
    run_two_replicas(store_url, tmp_path, spawn_fake_provider, spawn_serve)


@pytest.mark.slow
def test_two_replicas_share_a_team_cap_on_sqlite(tmp_path, spawn_fake_provider, spawn_serve):
    run_two_replicas(f"sqlite:///{tmp_path}/spend.db", tmp_path, spawn_fake_provider, spawn_serve)
