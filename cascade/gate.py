"""BudgetGate: the executor's only door to the budget store, applying the policy's
``on_store_unavailable`` rule.

- ``fail_closed`` (default): when the store cannot be reached before a call, the request fails with
  ``BudgetStoreUnavailable`` — no money is spent that the ledger cannot see.
- ``fail_open``: the call goes ahead unbudgeted; the trace says so.
After a call has been paid for, a store failure never loses the answer: the cost stays in the trace
(``unrecorded_cost_usd``) and the reservation expires after its TTL.

A settle above its reservation (a provider reported more tokens than were reserved for) is an
*overrun*: committed whole — counted against every cap at once — and flagged (a note in the attempt,
``overrun_usd`` in the trace and ``cascade_overrun_usd_total``).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from policies.errors import BudgetStoreUnavailable

log = logging.getLogger("cascade.budget")


class BudgetGate:
    def __init__(self, store: Any, *, fail_open: bool, ttl_s: float) -> None:
        self.store = store
        self.fail_open = fail_open
        self.ttl_s = ttl_s
        self._late: set[asyncio.Task] = set()
        self._held_s = 1.0          # moving average of how long a reservation is held (reserve -> settle)

    def settle_estimate_s(self) -> float:
        """Whole seconds in which reservations in flight are expected to settle (for Retry-After when
        only they stand in a request's way): the recent mean hold time, rounded up, within [1, 60]."""
        return float(min(60, max(1, math.ceil(self._held_s))))

    def _settled(self, reservation: Any) -> None:
        held = self.ttl_s - (reservation.expires_at - time.time())
        if math.isfinite(held) and held >= 0:
            self._held_s += 0.1 * (held - self._held_s)

    def settle_late(self, call: "asyncio.Future[Any]", *, request_id: str, user: str | None, model: str,
                    caps: Any, price: Any) -> None:
        """A call we stopped waiting for (our timeout) may still be answered — and billed — by the
        provider. Let it finish in the background and record what it cost, so the ledger never shows
        less than the provider charged."""
        task = asyncio.ensure_future(self._record_late(call, request_id, user, model, caps, price))
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _record_late(self, call: "asyncio.Future[Any]", request_id: str, user: str | None, model: str,
                           caps: Any, price: Any) -> None:
        try:
            result = await call
            if hasattr(result, "__anext__"):          # a stream opened late: drain it for its usage
                async for _ in result:
                    pass
                result = result.final()
        except BaseException:  # noqa: BLE001 - it failed after all: nothing was billed
            return
        cost = price.cost(result.prompt_tokens, result.completion_tokens)
        try:
            try:
                reservation = await self.store.areserve(request_id=request_id, user=user, model=model,
                                                        amount_usd=0.0, caps=caps, ttl_s=self.ttl_s)
            except Exception:  # noqa: BLE001 - over a cap already: still record the money
                reservation = await self.store.areserve(request_id=request_id, user=user, model=model,
                                                        amount_usd=0.0, caps=(), ttl_s=self.ttl_s)
            await self.store.acommit(reservation, cost)
        except Exception as exc:  # noqa: BLE001
            log.warning("late answer of %s for request %s ($%.9f) not recorded: %s", model, request_id, cost, exc)

    async def drain(self) -> None:
        """Wait for late answers still being recorded (call before reading the ledger at shutdown)."""
        while self._late:
            await asyncio.gather(*list(self._late), return_exceptions=True)

    async def reserve(self, notes: list[str], **kwargs: Any) -> Any:
        """A reservation, or None when the store is down and the policy fails open."""
        try:
            return await _reserve_cancel_safe(self.store, ttl_s=self.ttl_s, **kwargs)
        except BudgetStoreUnavailable as exc:
            if not self.fail_open:
                raise BudgetStoreUnavailable(f"budget store unavailable, failing closed (policy "
                                             f"on_store_unavailable: fail_closed): {exc}") from None
            notes.append(f"budget store unavailable, proceeding unbudgeted (fail_open): {exc}")
            return None

    @staticmethod
    def overrun(reservation: Any, cost_usd: float) -> float:
        """USD by which ``cost_usd`` exceeds what ``reservation`` held (0.0 when within it)."""
        if reservation is None:
            return 0.0
        excess = cost_usd - reservation.amount_usd
        return excess if excess > 1e-12 else 0.0

    async def commit(self, reservation: Any, cost_usd: float, notes: list[str]) -> bool:
        """Record the spend; False (and a note) when the store could not take it. An overrun is
        committed whole and noted."""
        if reservation is None:
            return False
        self._settled(reservation)
        excess = self.overrun(reservation, cost_usd)
        if excess:
            log.warning("overrun: request %s cost $%.9f, $%.9f more than reserved", reservation.request_id,
                        cost_usd, excess)
            notes.append(f"overrun: the provider reported ${cost_usd:.6f}, ${excess:.6f} over the "
                         f"${reservation.amount_usd:.6f} reserved (counted against the caps)")
        try:
            await self.store.acommit(reservation, cost_usd)
            return True
        except BudgetStoreUnavailable as exc:
            log.warning("spend of $%.9f for request %s not recorded: %s", cost_usd, reservation.request_id, exc)
            notes.append(f"spend not recorded, store unavailable: {exc}")
            return False

    async def release(self, reservation: Any) -> None:
        if reservation is None:
            return
        self._settled(reservation)
        try:
            await self.store.arelease(reservation)
        except BudgetStoreUnavailable:
            pass                       # it expires after its TTL

    async def release_shielded(self, reservation: Any) -> None:
        """Release from a ``finally`` that may be running because the task was cancelled."""
        if reservation is None:
            return
        try:
            await asyncio.shield(self.store.arelease(reservation))
        except asyncio.CancelledError:
            self.store.release(reservation)
        except Exception:  # noqa: BLE001 - the store is down: the reservation expires after its TTL
            pass


async def _reserve_cancel_safe(store: Any, **kwargs: Any) -> Any:
    """Reserve; if the request is cancelled while the store is answering, the reservation that the
    store still makes is released as soon as it exists (never left to its TTL)."""
    task = asyncio.ensure_future(store.areserve(**kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        def release_when_made(t: asyncio.Future) -> None:
            if not t.cancelled() and t.exception() is None:
                store.release(t.result())
        task.add_done_callback(release_when_made)
        raise
