"""`MemoryBudgetStore`: process-local, thread-safe (one lock); for tests and single-process use.

It keeps running totals, not every entry, so a long-running process stays flat in memory:

- spend per cap bucket (a bucket of a window that ended more than a day ago is dropped);
- all-time spend in total and per user;
- the most recent ``history`` ledger entries (``ledger()`` returns those; 10,000 by default, about
  5 MB), which also bound the double-commit guard: a reservation committed again while its entry is
  still in the history is a no-op, as in the other stores.

``memory://?history=N`` sets the history length from a store URL.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

from cascade.budget.base import (BudgetStoreBase, LedgerEntry, Reservation, ReservationNotFound, admit, clock,
                                 commit_inputs, new_reservation, reservation_id,
                                 reserve_inputs, resolve_caps, usage_snapshot)
from policies.budget import BudgetSnapshot, Cap, from_nano
from policies.errors import InvalidRequestError

DEFAULT_HISTORY = 10_000
SPEND_GRACE_S = 86_400          # a bucket is kept this long after its window ended (as in Redis)
_PRUNE_EVERY_S = 60.0


class MemoryBudgetStore(BudgetStoreBase):
    """Everything in dicts behind one lock. Money is kept in integer nano-dollars. Its operations take
    microseconds and never wait on I/O, so the async twins run inline (no thread hop)."""

    inline_async = True

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise InvalidRequestError(f"history must be a positive number of ledger entries, got {history!r}")
        self.url = "memory://" if history == DEFAULT_HISTORY else f"memory://?history={history}"
        self.history = history
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Reservation, int]] = {}         # id -> (reservation, amount nano)
        self._spent: dict[str, list] = {}                           # bucket -> [nano, ends_at or None]
        self._total = 0
        self._by_user: dict[str | None, int] = {}
        self._recent: OrderedDict[str, tuple[LedgerEntry, int]] = OrderedDict()   # id -> (entry, nano)
        self._pruned_at = float("-inf")

    # ---- reserve / commit / release ----------------------------------------------------------------

    def reserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                caps: Sequence[Cap], ttl_s: float = 300.0,
                now: float | None = None) -> Reservation:
        amount, ttl, now, checks = reserve_inputs(amount_usd, ttl_s, now, caps, user)
        with self._lock:
            self._drop_expired(now)
            self._prune(now)
            spent = [self._spent_in(c.bucket) for c in checks]
            reserved = [self._reserved(c.bucket) for c in checks]
            admit(checks, spent, reserved, amount_nano=amount, user=user, now=now)
            reservation = new_reservation(request_id=request_id, user=user, model=model,
                                          amount_nano=amount, expires_at=now + ttl, checks=checks)
            self._open[reservation.id] = (reservation, amount)
        return reservation

    def commit(self, reservation: Reservation | str, cost_usd: float, *,
               now: float | None = None) -> LedgerEntry:
        rid, cost, now = commit_inputs(reservation, cost_usd, now)
        with self._lock:
            if rid in self._recent:
                return self._recent[rid][0]
            held = self._open.pop(rid, None)
            if held is not None:
                reservation = held[0]
            elif isinstance(reservation, str):
                raise ReservationNotFound(f"unknown reservation {rid!r} (released, expired or never made)")
            for bucket, ends_at in reservation.buckets:
                row = self._spent.setdefault(bucket, [0, ends_at])
                row[0] += cost
            self._total += cost
            self._by_user[reservation.user] = self._by_user.get(reservation.user, 0) + cost
            entry = LedgerEntry(reservation_id=rid, request_id=reservation.request_id,
                                user=reservation.user, model=reservation.model,
                                cost_usd=from_nano(cost), at=now)
            self._recent[rid] = (entry, cost)
            if len(self._recent) > self.history:
                self._recent.popitem(last=False)
        return entry

    def release(self, reservation: Reservation | str) -> None:
        with self._lock:
            self._open.pop(reservation_id(reservation), None)

    # ---- reading ------------------------------------------------------------------------------------

    def snapshot(self, *, user: str | None, caps: Sequence[Cap],
                 now: float | None = None) -> BudgetSnapshot:
        now = clock(now)
        checks = resolve_caps(caps, user, now)
        with self._lock:
            spent = [self._spent_in(c.bucket) for c in checks]
            reserved = [self._reserved(c.bucket, now) for c in checks]
        return usage_snapshot(checks, spent, reserved)

    def open_reservations(self, now: float | None = None) -> int:
        now = clock(now)
        with self._lock:
            return sum(1 for r, _ in self._open.values() if r.expires_at >= now)

    def expire(self, now: float | None = None) -> int:
        with self._lock:
            return self._drop_expired(clock(now))

    def total_spent(self, *, user: str | None = None) -> float:
        with self._lock:
            return from_nano(self._total if user is None else self._by_user.get(user, 0))

    def spend_by_user(self) -> dict[str | None, float]:
        with self._lock:
            return {user: from_nano(n) for user, n in self._by_user.items()}

    def ledger(self, *, request_id: str | None = None) -> list[LedgerEntry]:
        """The most recent ``history`` entries, oldest first (this store keeps no more)."""
        with self._lock:
            return [e for e, _ in self._recent.values() if request_id is None or e.request_id == request_id]

    def close(self) -> None:
        pass

    # ---- internals (caller holds the lock) ----------------------------------------------------------

    def _spent_in(self, bucket: str) -> int:
        row = self._spent.get(bucket)
        return row[0] if row else 0

    def _reserved(self, bucket: str, now: float | None = None) -> int:
        return sum(amount for r, amount in self._open.values()
                   if (now is None or r.expires_at >= now) and any(b == bucket for b, _ in r.buckets))

    def _drop_expired(self, now: float) -> int:
        expired = [rid for rid, (r, _) in self._open.items() if r.expires_at < now]
        for rid in expired:
            del self._open[rid]
        return len(expired)

    def _prune(self, now: float) -> None:
        """Drop the spend of windows that ended more than a day ago (at most once a minute)."""
        if now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        for bucket in [b for b, (_, ends) in self._spent.items() if ends is not None and ends + SPEND_GRACE_S < now]:
            del self._spent[bucket]
