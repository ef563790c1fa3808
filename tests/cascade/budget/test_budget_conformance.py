"""The conformance suite every budget store passes (memory, sqlite, redis: see conftest `store`)."""
from __future__ import annotations

import math

import pytest

from cascade.budget import BudgetStore, LedgerEntry, Reservation, ReservationNotFound
from policies.budget import Cap, to_nano, window_bucket
from policies.errors import BudgetExceeded, InvalidRequestError

T0 = 1_699_920_000.0          # a UTC day (hence hour and minute) boundary: 2023-11-14T00:00:00Z
GLOBAL_TOTAL = Cap("global", "total", 1.0)


def reserve(store: BudgetStore, amount: float, *, caps=(GLOBAL_TOTAL,), user: str | None = None,
            request_id: str = "req", now: float = T0, ttl_s: float = 300.0) -> Reservation:
    return store.reserve(request_id=request_id, user=user, model="deepseek-chat",
                         amount_usd=amount, caps=list(caps), ttl_s=ttl_s, now=now)


def usage(store: BudgetStore, cap: Cap, *, user: str | None = None, now: float = T0):
    (only,) = store.snapshot(user=user, caps=[cap], now=now).usages
    return only


# ---- reserve -----------------------------------------------------------------------------------------

def test_reserve_within_cap_holds_the_amount(store):
    res = reserve(store, 0.4, user="alice", request_id="r1")
    assert isinstance(res, Reservation)
    assert (res.request_id, res.user, res.model, res.amount_usd) == ("r1", "alice", "deepseek-chat", 0.4)
    assert res.expires_at == T0 + 300
    assert store.open_reservations(now=T0) == 1
    assert usage(store, GLOBAL_TOTAL).reserved_usd == 0.4
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.0


@pytest.mark.parametrize("window", ["minute", "hour", "day", "month"])
def test_refusal_names_scope_window_limit_and_retry_after(store, window):
    cap = Cap("global", window, 1.0)
    now = T0 + 30
    store.commit(reserve(store, 0.7, caps=[cap], now=now, request_id="spent"), 0.7, now=now)
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.4, caps=[cap], now=now)
    err = info.value
    _, ends_at = window_bucket(window, now)
    assert (err.scope, err.window, err.limit_usd, err.in_flight) == ("global", window, 1.0, False)
    assert err.retry_after == pytest.approx(ends_at - now)
    assert store.open_reservations(now=now) == 0   # the refused one holds nothing
    reserve(store, 0.3, caps=[cap], now=now)        # exactly up to the limit is allowed


@pytest.mark.parametrize("window", ["minute", "day", "total"])
def test_a_refusal_caused_by_reservations_in_flight_says_so(store, window):
    """Issue 11, finding 3: money only *held* by requests in flight frees up in seconds, not at the
    window's reset: the refusal says so and leaves Retry-After to the settle time."""
    cap = Cap("user", window, 0.02)
    reserve(store, 0.015, caps=[cap], user="alice", now=T0 + 30)
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.01, caps=[cap], user="alice", now=T0 + 30)
    err = info.value
    assert err.in_flight is True and err.retry_after is None
    assert "requests in flight" in str(err) and "resets" not in str(err)
    store.commit(reserve(store, 0.015, caps=[], user="bob", now=T0 + 30, request_id="b"), 0.015, now=T0 + 30)
    with pytest.raises(BudgetExceeded) as spent:        # bob's spend does not touch alice's cap ...
        reserve(store, 0.021, caps=[cap], user="alice", now=T0 + 30)
    assert spent.value.in_flight is False             # ... and a request over the cap on its own is no in-flight case


def test_total_window_refusal_has_no_retry_after(store):
    reserve(store, 1.0)
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.000000001)
    assert (info.value.scope, info.value.window, info.value.retry_after) == ("global", "total", None)


def test_user_caps_apply_only_to_that_user(store):
    cap = Cap("user", "minute", 0.5)
    reserve(store, 0.5, caps=[cap], user="alice")
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.1, caps=[cap], user="alice")
    assert (info.value.scope, info.value.window, info.value.limit_usd) == ("user", "minute", 0.5)
    reserve(store, 0.5, caps=[cap], user="bob")
    reserve(store, 5.0, caps=[cap], user=None)       # user caps never apply to anonymous traffic
    assert store.snapshot(user=None, caps=[cap], now=T0).usages == ()
    assert usage(store, cap, user="bob").reserved_usd == 0.5


def test_global_caps_count_all_users(store):
    cap = Cap("global", "day", 1.0)
    reserve(store, 0.6, caps=[cap], user="alice")
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.5, caps=[cap], user="bob")
    assert info.value.scope == "global"
    reserve(store, 0.4, caps=[cap], user=None)


def test_the_tightest_of_several_caps_refuses(store):
    caps = [Cap("global", "day", 10.0), Cap("user", "hour", 1.0), Cap("global", "minute", 0.5)]
    reserve(store, 0.5, caps=caps, user="alice")
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.1, caps=caps, user="bob")
    assert (info.value.scope, info.value.window) == ("global", "minute")


@pytest.mark.parametrize("window,length", [("minute", 60), ("hour", 3600), ("day", 86400)])
def test_windows_roll_over(store, window, length):
    cap = Cap("global", window, 1.0)
    store.commit(reserve(store, 1.0, caps=[cap]), 1.0, now=T0 + 1)
    last = T0 + length - 1
    with pytest.raises(BudgetExceeded) as info:
        reserve(store, 0.1, caps=[cap], now=last)
    assert info.value.retry_after == pytest.approx(1.0)
    assert usage(store, cap, now=T0 + length).spent_usd == 0.0
    reserve(store, 1.0, caps=[cap], now=T0 + length)
    assert usage(store, cap, now=last).spent_usd == 1.0


def test_negative_or_non_finite_amounts_are_rejected(store):
    for bad in (-0.01, math.nan, math.inf):
        with pytest.raises(InvalidRequestError):
            reserve(store, bad)
    with pytest.raises(ValueError):
        reserve(store, -1.0)
    res = reserve(store, 0.1)
    with pytest.raises(InvalidRequestError):
        store.commit(res, -0.5, now=T0)
    assert store.ledger() == [] and store.open_reservations(now=T0) == 1


def test_zero_amount_reservation_is_allowed_until_the_cap_is_overrun(store):
    reserve(store, 0.0)
    store.commit(reserve(store, 1.0), 1.0, now=T0)
    reserve(store, 0.0)
    store.commit(reserve(store, 0.0), 0.5, now=T0)   # the real cost is recorded anyway
    with pytest.raises(BudgetExceeded):
        reserve(store, 0.0)


# ---- commit ------------------------------------------------------------------------------------------

def test_commit_records_the_real_cost_and_frees_the_hold(store):
    cap = Cap("user", "day", 2.0)
    res = reserve(store, 0.5, caps=[GLOBAL_TOTAL, cap], user="alice", request_id="r9")
    entry = store.commit(res, 0.123456789, now=T0 + 2)
    assert entry == LedgerEntry(res.id, "r9", "alice", "deepseek-chat", 0.123456789, T0 + 2)
    assert store.open_reservations(now=T0) == 0
    for c in (GLOBAL_TOTAL, cap):
        u = usage(store, c, user="alice", now=T0 + 3)
        assert (u.spent_usd, u.reserved_usd) == (0.123456789, 0.0)
    assert store.total_spent() == 0.123456789 == store.total_spent(user="alice")
    assert store.total_spent(user="bob") == 0.0


def test_commit_sums_tiny_costs_exactly(store):
    for i in range(400):
        store.commit(reserve(store, 0.00000014, request_id=f"r{i}"), 0.00000014, now=T0)
    assert to_nano(store.total_spent()) == 400 * 140
    assert store.total_spent() == 0.000056
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.000056
    assert sum(to_nano(e.cost_usd) for e in store.ledger()) == 400 * 140


def test_cost_above_the_reservation_is_recorded_in_full(store):
    store.commit(reserve(store, 0.1), 0.9, now=T0)
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.9
    with pytest.raises(BudgetExceeded):
        reserve(store, 0.2)


def test_double_commit_returns_the_first_entry_and_counts_once(store):
    res = reserve(store, 0.5)
    first = store.commit(res, 0.25, now=T0 + 1)
    assert store.commit(res, 0.4, now=T0 + 2) == first
    assert store.commit(res.id, 0.4, now=T0 + 3) == first
    assert store.total_spent() == 0.25
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.25
    assert len(store.ledger()) == 1


def test_commit_after_expiry_still_records_the_money(store):
    res = reserve(store, 0.3, ttl_s=10)
    assert store.expire(now=T0 + 11) == 1
    entry = store.commit(res, 0.3, now=T0 + 12)
    assert entry.cost_usd == 0.3 and entry.reservation_id == res.id
    assert usage(store, GLOBAL_TOTAL, now=T0 + 12).spent_usd == 0.3
    assert store.total_spent() == 0.3


def test_commit_after_release_with_the_object_still_records(store):
    res = reserve(store, 0.3, user="dan")
    store.release(res)
    assert store.commit(res, 0.2, now=T0).cost_usd == 0.2
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.2 and store.spend_by_user() == {"dan": 0.2}
    with pytest.raises(ReservationNotFound):
        store.commit(reserve(store, 0.1, request_id="gone").id + "x", 0.1, now=T0)


def test_commit_of_an_unknown_id_string_raises(store):
    with pytest.raises(ReservationNotFound):
        store.commit("no-such-reservation", 0.1, now=T0)
    res = reserve(store, 0.3, ttl_s=10)
    store.expire(now=T0 + 11)
    with pytest.raises(LookupError):
        store.commit(res.id, 0.3, now=T0 + 12)
    assert store.ledger() == []


def test_commit_by_id_string_of_an_open_reservation(store):
    res = reserve(store, 0.3, user="carol", request_id="rq")
    entry = store.commit(res.id, 0.2, now=T0 + 1)
    assert (entry.user, entry.request_id, entry.model, entry.cost_usd) == ("carol", "rq", "deepseek-chat", 0.2)


# ---- release / expiry --------------------------------------------------------------------------------

def test_release_frees_the_hold_and_is_idempotent(store):
    res = reserve(store, 1.0)
    with pytest.raises(BudgetExceeded):
        reserve(store, 0.1)
    store.release(res)
    store.release(res)
    store.release(res.id)
    store.release("never-existed")
    assert store.open_reservations(now=T0) == 0
    assert usage(store, GLOBAL_TOTAL).reserved_usd == 0.0
    reserve(store, 1.0)
    assert store.ledger() == []


def test_release_after_commit_does_not_undo_the_spend(store):
    res = reserve(store, 0.5)
    store.commit(res, 0.5, now=T0)
    store.release(res)
    assert usage(store, GLOBAL_TOTAL).spent_usd == 0.5 and store.total_spent() == 0.5


def test_expired_reservations_stop_counting_and_expire_counts_them(store):
    short = reserve(store, 0.6, ttl_s=10)
    reserve(store, 0.3, ttl_s=100)
    assert usage(store, GLOBAL_TOTAL, now=T0 + 10).reserved_usd == pytest.approx(0.9)
    assert usage(store, GLOBAL_TOTAL, now=T0 + 11).reserved_usd == 0.3
    assert store.open_reservations(now=T0 + 10) == 2
    assert store.open_reservations(now=T0 + 11) == 1
    assert store.expire(now=T0 + 11) == 1
    assert store.expire(now=T0 + 11) == 0
    store.release(short)
    assert store.open_reservations(now=T0 + 200) == 0 and store.expire(now=T0 + 200) == 1


def test_expired_holds_do_not_block_new_reservations(store):
    reserve(store, 1.0, ttl_s=5)
    with pytest.raises(BudgetExceeded):
        reserve(store, 0.5, now=T0 + 5)
    reserve(store, 1.0, now=T0 + 6)


# ---- reading -----------------------------------------------------------------------------------------

def test_snapshot_reports_each_applicable_cap(store):
    caps = [Cap("global", "day", 2.0), Cap("user", "hour", 1.0)]
    store.commit(reserve(store, 0.5, caps=caps, user="alice"), 0.4, now=T0)
    reserve(store, 0.25, caps=caps, user="alice")
    reserve(store, 0.5, caps=caps, user="bob")
    snap = store.snapshot(user="alice", caps=caps, now=T0 + 1)
    assert [(u.cap, u.spent_usd, u.reserved_usd) for u in snap.usages] == [
        (caps[0], 0.4, 0.75), (caps[1], 0.4, 0.25)]
    assert snap.remaining_usd == pytest.approx(0.35)
    anonymous = store.snapshot(user=None, caps=caps, now=T0 + 1)
    assert [u.cap for u in anonymous.usages] == [caps[0]]
    assert store.snapshot(user="x", caps=[], now=T0).remaining_usd is None


def test_ledger_by_request_id_and_spend_by_user(store):
    store.commit(reserve(store, 0.1, user="alice", request_id="a"), 0.1, now=T0 + 1)
    store.commit(reserve(store, 0.2, user=None, request_id="b"), 0.2, now=T0 + 2)
    store.commit(reserve(store, 0.3, user="alice", request_id="a"), 0.3, now=T0 + 3)
    assert [e.cost_usd for e in store.ledger(request_id="a")] == [0.1, 0.3]
    assert [e.request_id for e in store.ledger()] == ["a", "b", "a"]
    assert store.ledger(request_id="zzz") == []
    assert store.spend_by_user() == {"alice": pytest.approx(0.4), None: 0.2}
    assert store.total_spent() == pytest.approx(0.6)


def test_a_second_handle_sees_the_same_budget(store_factory):
    one, two = store_factory(), store_factory()
    res = reserve(one, 0.7, user="u")
    with pytest.raises(BudgetExceeded):
        reserve(two, 0.7, user="u")
    two.commit(res.id, 0.5, now=T0)
    assert one.total_spent() == 0.5 and one.ledger() == two.ledger()


def test_url_and_repr_name_the_store(store):
    assert store.url.split("://")[0] in ("memory", "sqlite", "redis")
    assert store.url in repr(store)


# ---- async twins -------------------------------------------------------------------------------------

async def test_async_twins_share_the_semantics(store):
    res = await store.areserve(request_id="q", user="u", model="m", amount_usd=0.6,
                               caps=[GLOBAL_TOTAL], now=T0)
    with pytest.raises(BudgetExceeded):
        await store.areserve(request_id="q", user="u", model="m", amount_usd=0.6,
                             caps=[GLOBAL_TOTAL], now=T0)
    entry = await store.acommit(res, 0.2, now=T0)
    assert entry.cost_usd == 0.2
    other = await store.areserve(request_id="q", user="u", model="m", amount_usd=0.6,
                                 caps=[GLOBAL_TOTAL], now=T0)
    await store.arelease(other)
    snap = await store.asnapshot(user="u", caps=[GLOBAL_TOTAL], now=T0)
    assert (snap.usages[0].spent_usd, snap.usages[0].reserved_usd) == (0.2, 0.0)


@pytest.mark.parametrize("user", ["a:b", "ünï cødé\n\ttab", "", "user:day:x"])
def test_any_user_string_is_its_own_budget(store, user):
    cap = Cap("user", "day", 0.5)
    res = reserve(store, 0.5, caps=[cap], user=user)
    with pytest.raises(BudgetExceeded):
        reserve(store, 0.1, caps=[cap], user=user)
    reserve(store, 0.5, caps=[cap], user=user + "x")
    entry = store.commit(res.id, 0.25, now=T0)
    assert entry.user == user
    assert usage(store, cap, user=user).spent_usd == 0.25
    assert store.spend_by_user() == {user: 0.25}
    assert store.total_spent(user=user) == 0.25
