"""``Router.complete(..., user=Principal(user, team=, org=, key=))``: every level the principal names is charged
and checked against the policy's ``per_org`` / ``per_team`` / ``per_user`` / ``per_key`` caps."""
from __future__ import annotations

import pytest

from cascade import Principal
from policies.errors import BudgetExceeded, InvalidRequestError
from policies.loader import parse_policy
from tests.harness.fake_provider import answer

from .conftest import user_msg

TEAM_CAPPED = parse_policy("extends: default\nname: teams\nbudgets:\n  at_cap: reject\n"
                           "  per_team: [{window: day, usd: 0.0005}]\n  per_org: [{window: month, usd: 1}]\n",
                           source="teams.yaml")
COST = (20 * 0.14 + 200 * 0.28) / 1e6


async def test_a_team_cap_is_shared_by_its_users(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=20, completion_tokens=200))
    router = make_router(TEAM_CAPPED, score=0.1)
    alice, bob = Principal("alice", team="ml", org="acme"), Principal("bob", team="ml", org="acme")
    answered = 0
    with pytest.raises(BudgetExceeded) as refused:
        for i in range(20):
            resp = await router.acomplete(user_msg(f"q{i}"), user=(alice, bob)[i % 2], max_tokens=200)
            assert resp.cascade.user == ("alice", "bob")[i % 2]
            answered += 1
    assert "team 'ml'" in str(refused.value) and refused.value.scope == "team"
    assert 1 <= answered < 20
    team = router.store.snapshot(user=Principal(team="ml"), caps=router.caps).usages
    [team_day] = [u for u in team if u.cap.scope == "team"]
    assert team_day.spent_usd == pytest.approx(answered * COST) and team_day.spent_usd <= 0.0005
    # another team of the same org still has its own room
    resp = await router.acomplete(user_msg("q"), user=Principal("carol", team="web", org="acme"), max_tokens=200)
    assert resp.cascade.outcome == "ok"


async def test_a_principal_level_must_be_text(make_router):
    router = make_router(TEAM_CAPPED)
    with pytest.raises(InvalidRequestError, match="principal team must be a string"):
        await router.acomplete(user_msg("hi"), user=Principal("alice", team=5))  # type: ignore[arg-type]
