"""Org → team → user → key caps in every store: one reservation checks every level the principal names
(atomically: a refusal at one level holds nothing at the others), commit / release / a spooled settlement
update every level, and a refusal names its level."""
from __future__ import annotations

import pytest

from cascade.gate import BudgetGate
from cascade.spool import SettlementSpool
from policies.budget import Cap, Principal, to_nano
from policies.errors import BudgetExceeded

NOW = 1_800_000_000.0
CAPS = (Cap("org", "month", 10.0), Cap("team", "day", 5.0), Cap("user", "day", 3.0), Cap("key", "day", 2.0),
        Cap("global", "day", 100.0))
ALICE = Principal("alice", team="ml", org="acme", key="alice-laptop")
BOB = Principal("bob", team="ml", org="acme", key="bob-ci")
CAROL = Principal("carol", team="web", org="acme", key="carol-1")


def usage(store, who, scope):
    [u] = [u for u in store.snapshot(user=who, caps=CAPS, now=NOW).usages if u.cap.scope == scope]
    return u


def spend(store, who, usd, request_id="r"):
    res = store.reserve(request_id=request_id, user=who, model="m", amount_usd=usd, caps=CAPS, now=NOW)
    store.commit(res, usd, now=NOW)


def test_a_commit_is_counted_at_every_level(store_factory):
    store = store_factory()
    spend(store, ALICE, 1.5)
    spend(store, BOB, 1.0)
    spend(store, CAROL, 0.25)
    assert usage(store, ALICE, "team").spent_usd == pytest.approx(2.5)
    assert usage(store, CAROL, "team").spent_usd == pytest.approx(0.25)
    assert usage(store, ALICE, "org").spent_usd == pytest.approx(2.75)
    assert usage(store, ALICE, "user").spent_usd == pytest.approx(1.5)
    assert usage(store, BOB, "key").spent_usd == pytest.approx(1.0)
    assert usage(store, None, "global").spent_usd == pytest.approx(2.75)
    assert store.spend_by_user() == {"alice": pytest.approx(1.5), "bob": pytest.approx(1.0),
                                     "carol": pytest.approx(0.25)}
    assert {e.user for e in store.ledger()} == {"alice", "bob", "carol"}


def test_the_team_cap_binds_two_users_and_the_refusal_names_it(store_factory):
    store = store_factory()
    spend(store, ALICE, 1.75)
    spend(store, BOB, 1.75)                                     # team ml: $3.50 of $5
    with pytest.raises(BudgetExceeded) as refused:
        store.reserve(request_id="x", user=ALICE, model="m", amount_usd=1.75, caps=CAPS, now=NOW)
    assert refused.value.scope == "team" and refused.value.window == "day" and refused.value.limit_usd == 5.0
    assert str(refused.value).startswith("budget exceeded: team 'ml' day cap $5.00: $3.50 spent, $0.00 reserved "
                                         "by requests in flight, this request's worst case $1.75")
    assert store.open_reservations(now=NOW) == 0                # atomic: nothing held at any other level
    assert usage(store, ALICE, "org").reserved_usd == 0 and usage(store, ALICE, "user").reserved_usd == 0
    spend(store, CAROL, 1.75)                                   # another team of the org is not affected


def test_the_innermost_level_refuses_too(store_factory):
    store = store_factory()
    spend(store, ALICE, 1.5)
    with pytest.raises(BudgetExceeded, match=r"key 'alice-laptop' day cap \$2.00"):
        store.reserve(request_id="x", user=ALICE, model="m", amount_usd=0.75, caps=CAPS, now=NOW)
    # the user's other key has room at the key level, but not at the user level ($3)
    other_key = Principal("alice", team="ml", org="acme", key="alice-ci")
    spend(store, other_key, 1.25)
    with pytest.raises(BudgetExceeded, match=r"user 'alice' day cap \$3.00"):
        store.reserve(request_id="y", user=other_key, model="m", amount_usd=0.5, caps=CAPS, now=NOW)


def test_a_reservation_holds_and_its_release_frees_every_level(store_factory):
    store = store_factory()
    res = store.reserve(request_id="r", user=ALICE, model="m", amount_usd=0.5, caps=CAPS, now=NOW)
    for scope in ("org", "team", "user", "key", "global"):
        assert usage(store, ALICE, scope).reserved_usd == pytest.approx(0.5), scope
    assert res.user == "alice" and len(res.buckets) == 5
    store.release(res)
    assert all(u.reserved_usd == 0 for u in store.snapshot(user=ALICE, caps=CAPS, now=NOW).usages)


def test_a_plain_user_name_skips_the_levels_it_does_not_name(store_factory):
    store = store_factory()
    res = store.reserve(request_id="r", user="dave", model="m", amount_usd=0.5, caps=CAPS, now=NOW)
    assert sorted(b.split(":")[0] for b, _ in res.buckets) == ["global", "user"]
    store.commit(res, 0.5, now=NOW)
    assert usage(store, "dave", "user").spent_usd == pytest.approx(0.5)


async def test_a_spooled_settlement_is_applied_at_every_level(store_factory, tmp_path):
    """The store is unreachable when the cost is settled (a real SQLite store whose directory cannot be
    made): the settlement is spooled with every level's bucket, and applied later to the live store."""
    from cascade.budget.sqlite import SQLiteBudgetStore

    store = store_factory()
    res = store.reserve(request_id="r", user=BOB, model="m", amount_usd=0.5, caps=CAPS, now=NOW)
    (tmp_path / "blocker").write_text("a file where the store's directory should be")
    down = SQLiteBudgetStore(tmp_path / "blocker" / "spend.db")
    spool = SettlementSpool(tmp_path / "spool.jsonl")
    gate = BudgetGate(down, fail_open=False, ttl_s=300.0, spool=spool)
    notes: list[str] = []
    assert await gate.commit(res, 0.4, notes) == pytest.approx(0.4)        # not in the ledger: spooled
    await gate.drain(holds_timeout_s=0)
    assert "spooled" in notes[0] and usage(store, BOB, "team").spent_usd == 0
    assert spool.apply(store) == (1, None)
    for scope in ("org", "team", "user", "key", "global"):
        assert to_nano(usage(store, BOB, scope).spent_usd) == to_nano(0.4), scope
    assert store.open_reservations(now=NOW) == 0       # the settlement (same id) also ended the hold
