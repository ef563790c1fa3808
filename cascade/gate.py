"""BudgetGate: the executor's only door to the budget store, applying the policy's
``on_store_unavailable`` rule.

- ``fail_closed`` (default): when the store cannot be reached before a call, the request fails with
  ``BudgetStoreUnavailable`` — no money is spent that the ledger cannot see.
- ``fail_open``: the call goes ahead unbudgeted (a reservation the store never saw); the trace says so,
  and its cost is settled like any other.
After a call has been paid for, a store failure never loses the answer nor the money: the settlement is
written to the local spool (:mod:`cascade.spool`) and applied when the store is back; the trace carries
``unrecorded_cost_usd`` meanwhile. A call we stopped waiting for — our timeout, or the request was
cancelled — runs on and its late answer is settled the same way (:meth:`BudgetGate.settle_late`).

:meth:`BudgetGate.drain` (``Router.aclose()``) returns once this process holds no reservation and
records nothing more: every hold settled or released, every late answer and spooled settlement written.

A settle above its reservation (a provider reported more tokens than were reserved for) is an
*overrun*: committed whole — counted against every cap at once — and flagged (a note in the attempt,
``overrun_usd`` in the trace and ``cascade_overrun_usd_total``).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Awaitable

from policies.budget import to_nano
from policies.errors import BudgetStoreUnavailable

from cascade.budget.base import Reservation, new_reservation, resolve_caps
from cascade.spool import Settlement, SettlementSpool

log = logging.getLogger("cascade.budget")
DRAIN_HOLDS_S = 60.0            # how long drain() waits for requests still holding reservations
_RETRY_FIRST_S, _RETRY_MAX_S = 0.5, 10.0


class BudgetGate:
    def __init__(self, store: Any, *, fail_open: bool, ttl_s: float, spool: SettlementSpool | None = None) -> None:
        self.store = store
        self.fail_open = fail_open
        self.ttl_s = ttl_s
        self.spool = spool
        self._held: dict[str, Reservation] = {}       # reservations of this process not yet settled
        self._tasks: set[asyncio.Future] = set()      # late answers and settlements being recorded
        self._applier: asyncio.Task | None = None     # applies the spool while it holds anything
        self._wake: asyncio.Event | None = None        # set when the store takes a write again
        self._held_s = 1.0          # moving average of how long a reservation is held (reserve -> settle)

    def settle_estimate_s(self) -> float:
        """Whole seconds in which reservations in flight are expected to settle (for Retry-After when
        only they stand in a request's way): the recent mean hold time, rounded up, within [1, 60]."""
        return float(min(60, max(1, math.ceil(self._held_s))))

    def _settled(self, reservation: Reservation) -> None:
        held = self.ttl_s - (reservation.expires_at - time.time())
        if reservation.amount_usd > 0 and math.isfinite(held) and held >= 0:
            self._held_s += 0.1 * (held - self._held_s)

    def settle_late(self, call: "asyncio.Future[Any]", *, request_id: str, user: str | None, model: str,
                    caps: Any, price: Any) -> None:
        """A call we stopped waiting for (our timeout, or the request was cancelled) may still be
        answered — and billed — by the provider. Let it finish in the background and record what it
        cost, so the ledger never shows less than the provider charged."""
        self._track(self._record_late(call, request_id, user, model, caps, price))

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
        notes: list[str] = []
        if await self._settle(self.unbudgeted(request_id, user, model, caps), cost, notes):
            log.warning("late answer of %s for request %s: %s", model, request_id, "; ".join(notes))

    async def drain(self, holds_timeout_s: float = DRAIN_HOLDS_S) -> None:
        """Wait until this process holds no reservation (requests finished or cancelled; after
        ``holds_timeout_s`` what is still held is released) and nothing is being recorded; then one
        last application of the spool."""
        deadline = time.monotonic() + holds_timeout_s
        while self._held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for reservation in list(self._held.values()):
            log.warning("reservation %s of request %s still held at shutdown: released",
                        reservation.id, reservation.request_id)
            await self.release(reservation)
        loop = asyncio.get_running_loop()
        while mine := [t for t in self._tasks if t.get_loop() is loop]:      # a sync Router has its own loop
            await asyncio.gather(*mine, return_exceptions=True)
        applier = self._applier
        if applier is not None and applier.get_loop() is loop:
            self._applier = self._wake = None
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)
        try:
            await self.apply_spool()
        except OSError as exc:
            log.error("spool unreadable at shutdown: %s", exc)

    async def reserve(self, notes: list[str], **kwargs: Any) -> Reservation:
        """A reservation; when the store is down and the policy fails open, an unbudgeted one (the
        store never saw it: its cost is committed, or spooled, against the caps' buckets)."""
        try:
            reservation = await _reserve_cancel_safe(self.store, ttl_s=self.ttl_s, **kwargs)
        except BudgetStoreUnavailable as exc:
            if not self.fail_open:
                raise BudgetStoreUnavailable(f"budget store unavailable, failing closed (policy "
                                             f"on_store_unavailable: fail_closed): {exc}") from None
            notes.append(f"budget store unavailable, proceeding unbudgeted (fail_open): {exc}")
            return self.unbudgeted(kwargs["request_id"], kwargs["user"], kwargs["model"], kwargs["caps"])
        self._held[reservation.id] = reservation
        return reservation

    @staticmethod
    def overrun(reservation: Reservation, cost_usd: float) -> float:
        """USD by which ``cost_usd`` exceeds what ``reservation`` held (0.0 when within it, and for an
        unbudgeted reservation, which held nothing by design)."""
        if reservation.amount_usd <= 0:
            return 0.0
        excess = cost_usd - reservation.amount_usd
        return excess if excess > 1e-12 else 0.0

    async def commit(self, reservation: Reservation, cost_usd: float, notes: list[str]) -> float:
        """Record the spend: 0.0 when the store took it, else the USD not in the ledger yet (spooled,
        applied when the store is back; a note says so). Runs to its end even if the caller is cancelled.
        An overrun is committed whole and noted."""
        self._held.pop(reservation.id, None)
        self._settled(reservation)
        excess = self.overrun(reservation, cost_usd)
        if excess:
            log.warning("overrun: request %s cost $%.9f, $%.9f more than reserved", reservation.request_id,
                        cost_usd, excess)
            notes.append(f"overrun: the provider reported ${cost_usd:.6f}, ${excess:.6f} over the "
                         f"${reservation.amount_usd:.6f} reserved (counted against the caps)")
        return await asyncio.shield(self._track(self._settle(reservation, cost_usd, notes)))

    async def release(self, reservation: Reservation) -> None:
        self._held.pop(reservation.id, None)
        self._settled(reservation)
        try:
            await self.store.arelease(reservation)
        except BudgetStoreUnavailable:
            pass                       # it expires after its TTL

    async def release_shielded(self, reservation: Reservation) -> None:
        """Release from a ``finally`` that may be running because the task was cancelled."""
        self._held.pop(reservation.id, None)
        try:
            await asyncio.shield(self.store.arelease(reservation))
        except asyncio.CancelledError:
            self.store.release(reservation)
        except Exception:  # noqa: BLE001 - the store is down: the reservation expires after its TTL
            pass

    # ---- settling, the spool ----------------------------------------------------------------------
    def unbudgeted(self, request_id: str, user: str | None, model: str, caps: Any) -> Reservation:
        now = time.time()
        return new_reservation(request_id=request_id, user=user, model=model, amount_nano=0,
                               expires_at=now + self.ttl_s, checks=resolve_caps(caps, user, now))

    async def _settle(self, reservation: Reservation, cost_usd: float, notes: list[str]) -> float:
        try:
            await self.store.acommit(reservation, cost_usd)
        except BudgetStoreUnavailable as exc:
            return await self._spool(reservation, cost_usd, notes, exc)
        if self._wake is not None:
            self._wake.set()                          # the store takes writes again: apply now
        elif self.spool is not None and self.spool.has_pending():
            self.start_applying(delay_s=0.0)
        return 0.0

    async def _spool(self, reservation: Reservation, cost_usd: float, notes: list[str],
                     error: BudgetStoreUnavailable) -> float:
        where = "no spool configured"
        if self.spool is not None:
            settlement = Settlement.of(reservation, to_nano(cost_usd), time.time())
            try:
                await asyncio.to_thread(self.spool.append, settlement)
            except OSError as exc:
                where = f"the spool {self.spool.path} could not be written ({type(exc).__name__}: {exc})"
            else:
                notes.append(f"spend of ${cost_usd:.9f} not recorded yet (store unavailable: {error}); spooled "
                             f"to {self.spool.path}, applied when the store is back")
                self.start_applying()
                return cost_usd
        log.error("spend of $%.9f for request %s not recorded: store unavailable (%s) and %s",
                  cost_usd, reservation.request_id, error, where)
        notes.append(f"spend of ${cost_usd:.9f} not recorded: store unavailable ({error}) and {where}")
        return cost_usd

    async def apply_spool(self) -> tuple[int, BudgetStoreUnavailable | None]:
        """Apply what the spool holds now: (settlements applied, the store's error if it is still down)."""
        if self.spool is None or not self.spool.has_pending():
            return 0, None
        return await asyncio.to_thread(self.spool.apply, self.store)

    def start_applying(self, *, delay_s: float = _RETRY_FIRST_S) -> None:
        """Apply the spool in the background until it is empty, retrying with backoff while the store
        is down (one applier per gate)."""
        if self.spool is not None and (self._applier is None or self._applier.done()):
            self._wake = asyncio.Event()
            self._applier = asyncio.ensure_future(self._apply_until_empty(delay_s, self._wake))

    async def _apply_until_empty(self, delay_s: float, wake: asyncio.Event) -> None:
        try:
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), delay_s)
                except asyncio.TimeoutError:
                    pass
                wake.clear()
                try:
                    _, error = await self.apply_spool()
                except OSError as exc:
                    log.error("spool %s unreadable: %s", self.spool.path if self.spool else "?", exc)
                    error = exc  # type: ignore[assignment]
                if error is None:
                    return
                delay_s = min(max(delay_s * 2, _RETRY_FIRST_S), _RETRY_MAX_S)
        finally:
            if self._wake is wake:
                self._applier = self._wake = None

    def holds(self) -> int:
        return len(self._held)

    def _track(self, coro: Awaitable[Any]) -> "asyncio.Future[Any]":
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


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
