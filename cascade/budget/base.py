"""The budget-store contract: `Reservation`, `LedgerEntry`, the `BudgetStore` Protocol, and the pure
helpers every store shares (cap → bucket resolution, refusal errors, URL masking).

Money flows in two steps. ``reserve`` atomically checks every applicable cap and holds an estimate;
``commit`` replaces the hold with the real cost and appends one ledger entry; ``release`` drops a hold
without spending. Holds carry a deadline (``expires_at``), so a crashed process never keeps money.

Bucket keys name one window of one cap's subject: ``global:<window>:<label>`` or
``<level>:<window>:<label>:<name>`` for the levels of a :class:`~policies.budget.Principal` (``org``,
``team``, ``user``, ``key``; the name is last, so any name string is unambiguous). The labels come from
:func:`policies.budget.window_bucket` and never contain ``:``.

Hierarchy: ``reserve`` is given a Principal (or a plain user name) and checks, in the same atomic
operation, the caps of every level the principal names; the reservation lists every level's bucket, so
``commit`` (also a commit applied later from the spool) and ``release`` update every level at once.

Double commit: committing a reservation that already has a ledger entry is a no-op that returns the
existing entry (the second ``cost_usd`` is ignored). Committing a *Reservation object* the store no longer
knows (expired and dropped, or released) still records the spend against the object's buckets — money
really spent is always recorded. Committing an unknown *id string* raises `ReservationNotFound`.
"""
from __future__ import annotations

import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from policies.budget import (SCOPES, BudgetSnapshot, Cap, CapUsage, Principal, as_principal, from_nano, to_nano,
                             user_of, window_bucket)
from policies.errors import BudgetExceeded, ConfigError, InvalidRequestError

Bucket = tuple[str, float | None]
"""(bucket key, epoch second at which the bucket ends or None for the "total" window)."""


class ReservationNotFound(InvalidRequestError, LookupError):
    """``commit`` was given an id string the store does not know (never made, released or dropped)."""


@dataclass(frozen=True)
class Reservation:
    id: str
    request_id: str
    user: str | None
    model: str
    amount_usd: float
    expires_at: float
    buckets: tuple[Bucket, ...] = ()


@dataclass(frozen=True)
class LedgerEntry:
    reservation_id: str
    request_id: str
    user: str | None
    model: str
    cost_usd: float
    at: float


@dataclass(frozen=True)
class CapCheck:
    """One cap resolved against the bucket that contains ``now``."""

    cap: Cap
    bucket: str
    ends_at: float | None
    subject: str | None = None      # the org / team / user / key name (None for a global cap)


@runtime_checkable
class BudgetStore(Protocol):
    """``user`` (reserve, snapshot) is a plain user name or a :class:`~policies.budget.Principal`: the caps of
    every level it names apply; a Reservation and a LedgerEntry keep the user name."""

    url: str

    def reserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                caps: Sequence[Cap], ttl_s: float = 300.0,
                now: float | None = None) -> Reservation: ...

    def commit(self, reservation: Reservation | str, cost_usd: float, *,
               now: float | None = None) -> LedgerEntry: ...

    def release(self, reservation: Reservation | str) -> None: ...

    def snapshot(self, *, user: str | None, caps: Sequence[Cap],
                 now: float | None = None) -> BudgetSnapshot: ...

    def open_reservations(self, now: float | None = None) -> int: ...

    def expire(self, now: float | None = None) -> int: ...

    def total_spent(self, *, user: str | None = None) -> float: ...

    def spend_by_user(self) -> dict[str | None, float]: ...

    def ledger(self, *, request_id: str | None = None) -> list[LedgerEntry]: ...

    def close(self) -> None: ...

    async def areserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                       caps: Sequence[Cap], ttl_s: float = 300.0,
                       now: float | None = None) -> Reservation: ...

    async def acommit(self, reservation: Reservation | str, cost_usd: float, *,
                      now: float | None = None) -> LedgerEntry: ...

    async def arelease(self, reservation: Reservation | str) -> None: ...

    async def asnapshot(self, *, user: str | None, caps: Sequence[Cap],
                        now: float | None = None) -> BudgetSnapshot: ...


class BudgetStoreBase:
    """Shared behaviour: async twins run the sync method in a worker thread (or inline when the store
    never blocks: ``inline_async``); context manager."""

    url: str = ""
    inline_async = False

    async def _offload(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.inline_async:
            return fn(*args, **kwargs)
        return await _to_thread(fn, *args, **kwargs)

    async def areserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                       caps: Sequence[Cap], ttl_s: float = 300.0,
                       now: float | None = None) -> Reservation:
        return await self._offload(
            self.reserve, request_id=request_id, user=user, model=model,  # type: ignore[attr-defined]
            amount_usd=amount_usd, caps=caps, ttl_s=ttl_s, now=now)

    async def acommit(self, reservation: Reservation | str, cost_usd: float, *,
                      now: float | None = None) -> LedgerEntry:
        return await self._offload(self.commit, reservation, cost_usd,  # type: ignore[attr-defined]
                                now=now)

    async def arelease(self, reservation: Reservation | str) -> None:
        await self._offload(self.release, reservation)  # type: ignore[attr-defined]

    async def asnapshot(self, *, user: str | None, caps: Sequence[Cap],
                        now: float | None = None) -> BudgetSnapshot:
        return await self._offload(self.snapshot, user=user, caps=caps,  # type: ignore[attr-defined]
                                now=now)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"


async def _to_thread(fn, /, *args, **kwargs):
    import asyncio  # lazily: asyncio costs ~40 ms to import and `import cascade` must stay fast

    return await asyncio.to_thread(fn, *args, **kwargs)


# ---- pure helpers shared by the stores -------------------------------------------------------------

def clock(now: float | None) -> float:
    return time.time() if now is None else float(now)


def money_nano(name: str, usd: float) -> int:
    """Validate a non-negative finite USD amount and convert it to nano-dollars."""
    if isinstance(usd, bool) or not isinstance(usd, (int, float)) or not math.isfinite(usd):
        raise InvalidRequestError(f"{name} must be a finite number of USD, got {usd!r}")
    if usd < 0:
        raise InvalidRequestError(f"{name} must be >= 0, got {usd!r}")
    return to_nano(usd)


def check_ttl(ttl_s: float) -> float:
    if not (isinstance(ttl_s, (int, float)) and math.isfinite(ttl_s) and ttl_s > 0):
        raise InvalidRequestError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")
    return float(ttl_s)


def bucket_key(scope: str, window: str, label: str, name: str | None) -> str:
    return f"global:{window}:{label}" if scope == "global" else f"{scope}:{window}:{label}:{name}"


def reserve_inputs(amount_usd: float, ttl_s: float, now: float | None, caps: Sequence[Cap],
                   user: "Principal | str | None") -> tuple[int, float, float, Any]:
    """What every store's ``reserve`` starts from: the amount in nano-dollars, the checked TTL, the
    time, and the cap buckets that apply to ``user`` (a Principal or a user name) now."""
    now = clock(now)
    return money_nano("amount_usd", amount_usd), check_ttl(ttl_s), now, resolve_caps(caps, user, now)


def commit_inputs(reservation: "Reservation | str", cost_usd: float, now: float | None) -> tuple[str, int, float]:
    """What every store's ``commit`` starts from: the reservation id, the cost in nano-dollars, the time."""
    return reservation_id(reservation), money_nano("cost_usd", cost_usd), clock(now)


def resolve_caps(caps: Sequence[Cap], user: "Principal | str | None", now: float) -> list[CapCheck]:
    """The caps that apply to ``user`` — a Principal or a plain user name: global caps always, an org,
    team, user or key cap only when the principal names that level — each with the key and end of the
    bucket that contains ``now``."""
    who = as_principal(user)
    checks = []
    for cap in caps:
        if cap.scope not in SCOPES:
            raise ConfigError(f"unknown budget cap scope {cap.scope!r}; expected one of {', '.join(SCOPES)}")
        name = who.subject(cap.scope)
        if cap.scope != "global" and name is None:
            continue
        label, ends_at = window_bucket(cap.window, now)
        ends_at = None if ends_at is None else float(ends_at)
        checks.append(CapCheck(cap, bucket_key(cap.scope, cap.window, label, name), ends_at, name))
    return checks


def unique_buckets(checks: Sequence[CapCheck]) -> tuple[Bucket, ...]:
    seen: dict[str, float | None] = {}
    for check in checks:
        seen.setdefault(check.bucket, check.ends_at)
    return tuple(seen.items())


def new_reservation(*, request_id: str, user: "Principal | str | None", model: str, amount_nano: int,
                    expires_at: float, checks: Sequence[CapCheck]) -> Reservation:
    return Reservation(id=uuid.uuid4().hex, request_id=request_id, user=user_of(user), model=model,
                       amount_usd=from_nano(amount_nano), expires_at=expires_at,
                       buckets=unique_buckets(checks))


def exceeded(check: CapCheck, *, user: "Principal | str | None", spent_nano: int, reserved_nano: int,
             amount_nano: int, now: float) -> BudgetExceeded:
    """The refusal for ``check``: names the level (global, or which org, team, user or key), window,
    limit and when a retry may pass — the bucket's end, or (``in_flight``) as soon as the reservations of
    requests in flight settle, when the request would fit beside what is really spent."""
    cap = check.cap
    who = "global" if cap.scope == "global" else f"{cap.scope} {check.subject!r}"
    in_flight = reserved_nano > 0 and spent_nano + amount_nano <= cap.limit_nano
    retry_after = None if check.ends_at is None or in_flight else max(0.0, check.ends_at - now)
    message = (f"budget exceeded: {who} {cap.window} cap {usd(cap.limit_usd)}: {usd(from_nano(spent_nano))} "
               f"spent, {usd(from_nano(reserved_nano))} reserved by requests in flight, this request's "
               f"worst case {usd(from_nano(amount_nano))}")
    if in_flight:
        message += "; held by requests in flight: retry when they settle"
    elif retry_after is not None:
        message += f"; window resets in {retry_after:.0f}s"
    return BudgetExceeded(message, scope=cap.scope, window=cap.window, limit_usd=cap.limit_usd,
                          retry_after=retry_after, in_flight=in_flight)


def usd(amount: float) -> str:
    """``$4.98`` for whole cents, else six significant digits (``$0.000125``): small costs stay visible."""
    return f"${amount:.2f}" if abs(round(amount, 2) - amount) < 5e-10 else f"${amount:.6g}"


def admit(checks: Sequence[CapCheck], spent: Sequence[int], reserved: Sequence[int], *,
          amount_nano: int, user: str | None, now: float) -> None:
    """Raise the refusal (:func:`exceeded`) of the first cap that ``amount_nano`` would overrun."""
    for i, check in enumerate(checks):
        if spent[i] + reserved[i] + amount_nano > check.cap.limit_nano:
            raise exceeded(check, user=user, spent_nano=spent[i], reserved_nano=reserved[i],
                           amount_nano=amount_nano, now=now)


def usage_snapshot(checks: Sequence[CapCheck], spent: Sequence[int],
                   reserved: Sequence[int]) -> BudgetSnapshot:
    return BudgetSnapshot(tuple(CapUsage(c.cap, from_nano(s), from_nano(r), c.subject)
                                for c, s, r in zip(checks, spent, reserved)))


def reservation_id(reservation: Reservation | str) -> str:
    return reservation if isinstance(reservation, str) else reservation.id


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.S)
_QUERY_SECRET = re.compile(r"((?:password|passwd|pwd)=)[^&#]*", re.I)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for repr, logs and error messages)."""
    text = _QUERY_SECRET.sub(r"\1***", str(url))
    match = _USERINFO.match(text)
    if not match:
        return text
    scheme, rest = match.groups()
    at = rest.rfind("@")
    if at == -1 or ("/" in rest[:at] and not scheme.lower().startswith("redis")):
        return text
    user, sep, _password = rest[:at].partition(":")
    userinfo = f"{user}:***" if sep else "***"
    return f"{scheme}{userinfo}{rest[at:]}"
