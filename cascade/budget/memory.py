"""`MemoryBudgetStore`: process-local, thread-safe (one lock); for tests and single-process use."""
from __future__ import annotations

import threading
from typing import Sequence

from cascade.budget.base import (BudgetStoreBase, LedgerEntry, Reservation, ReservationNotFound, admit, clock,
                                 commit_inputs, new_reservation, reservation_id,
                                 reserve_inputs, resolve_caps, usage_snapshot)
from policies.budget import BudgetSnapshot, Cap, from_nano


class MemoryBudgetStore(BudgetStoreBase):
    """Everything in dicts behind one lock. Money is kept in integer nano-dollars. Its operations take
    microseconds and never wait on I/O, so the async twins run inline (no thread hop)."""

    inline_async = True

    def __init__(self) -> None:
        self.url = "memory://"
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Reservation, int]] = {}   # id -> (reservation, amount nano)
        self._spent: dict[str, int] = {}                      # bucket -> nano
        self._ledger: list[tuple[LedgerEntry, int]] = []      # (entry, cost nano), commit order
        self._committed: dict[str, LedgerEntry] = {}          # reservation id -> entry

    # ---- reserve / commit / release ----------------------------------------------------------------

    def reserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                caps: Sequence[Cap], ttl_s: float = 300.0,
                now: float | None = None) -> Reservation:
        amount, ttl, now, checks = reserve_inputs(amount_usd, ttl_s, now, caps, user)
        with self._lock:
            self._drop_expired(now)
            spent = [self._spent.get(c.bucket, 0) for c in checks]
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
            if rid in self._committed:
                return self._committed[rid]
            held = self._open.pop(rid, None)
            if held is not None:
                reservation = held[0]
            elif isinstance(reservation, str):
                raise ReservationNotFound(f"unknown reservation {rid!r} (released, expired or never made)")
            for bucket, _ends in reservation.buckets:
                self._spent[bucket] = self._spent.get(bucket, 0) + cost
            entry = LedgerEntry(reservation_id=rid, request_id=reservation.request_id,
                                user=reservation.user, model=reservation.model,
                                cost_usd=from_nano(cost), at=now)
            self._ledger.append((entry, cost))
            self._committed[rid] = entry
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
            spent = [self._spent.get(c.bucket, 0) for c in checks]
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
            return from_nano(sum(cost for e, cost in self._ledger if user is None or e.user == user))

    def spend_by_user(self) -> dict[str | None, float]:
        totals: dict[str | None, int] = {}
        with self._lock:
            for entry, cost in self._ledger:
                totals[entry.user] = totals.get(entry.user, 0) + cost
        return {user: from_nano(n) for user, n in totals.items()}

    def ledger(self, *, request_id: str | None = None) -> list[LedgerEntry]:
        with self._lock:
            return [e for e, _ in self._ledger if request_id is None or e.request_id == request_id]

    def close(self) -> None:
        pass

    # ---- internals (caller holds the lock) ----------------------------------------------------------

    def _reserved(self, bucket: str, now: float | None = None) -> int:
        return sum(amount for r, amount in self._open.values()
                   if (now is None or r.expires_at >= now) and any(b == bucket for b, _ in r.buckets))

    def _drop_expired(self, now: float) -> int:
        expired = [rid for rid, (r, _) in self._open.items() if r.expires_at < now]
        for rid in expired:
            del self._open[rid]
        return len(expired)
