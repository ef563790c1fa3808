"""Budget vocabulary shared by the engine (pure) and the budget stores (cascade.budget).

Money is carried as float USD at the edges and as integer nano-dollars inside stores, so that sums are
exact: ``to_nano(0.14e-6 * 1000) == 140_000``.
"""
from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Scope = Literal["global", "org", "team", "user", "key"]
SCOPES: tuple[str, ...] = ("global", "org", "team", "user", "key")
LEVELS: tuple[str, ...] = ("org", "team", "user", "key")
"""The levels of a :class:`Principal`, outermost first (a cap of such a scope applies to each of its values)."""
Window = Literal["minute", "hour", "day", "month", "total"]
WINDOWS: tuple[str, ...] = ("minute", "hour", "day", "month", "total")
NANO = 1_000_000_000


def to_nano(usd: float) -> int:
    """USD → integer nano-dollars (rounded half up, so tiny positive costs never vanish)."""
    return int(math.floor(usd * NANO + 0.5))


def from_nano(n: int) -> float:
    return n / NANO


@dataclass(frozen=True)
class Principal:
    """Who pays for a request: a user, and optionally the team and org it belongs to and the API key it
    came with (the key's *label* — a name or fingerprint, never the key itself). Each level that is set
    is charged, and checked against the caps of its scope, by one atomic reservation."""

    user: str | None = None
    team: str | None = None
    org: str | None = None
    key: str | None = None

    def subject(self, scope: str) -> str | None:
        """The name charged at ``scope`` ("org", "team", "user" or "key"), or None when unset."""
        return getattr(self, scope) if scope in LEVELS else None


def as_principal(who: "Principal | str | None") -> Principal:
    """``who`` as a Principal: a plain user name (or None) is a principal with only that user."""
    return who if isinstance(who, Principal) else Principal(user=who)


def user_of(who: "Principal | str | None") -> str | None:
    """The user name of ``who`` (a Principal or a user name)."""
    return who.user if isinstance(who, Principal) else who


@dataclass(frozen=True)
class Cap:
    """A spending cap: at most ``limit_usd`` per ``window`` for ``scope`` (all traffic, or each org, team,
    user or key)."""

    scope: Scope
    window: Window
    limit_usd: float

    @property
    def limit_nano(self) -> int:
        return to_nano(self.limit_usd)


def window_bucket(window: str, now: float) -> tuple[str, float | None]:
    """The bucket label of ``now`` in ``window`` (UTC) and the epoch second at which the bucket ends."""
    if window == "total":
        return "total", None
    if window == "minute":
        start = math.floor(now / 60) * 60
        return f"m{int(start)}", start + 60
    if window == "hour":
        start = math.floor(now / 3600) * 3600
        return f"h{int(start)}", start + 3600
    t = time.gmtime(now)
    if window == "day":
        start = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
        return time.strftime("d%Y-%m-%d", t), start + 86400
    if window == "month":
        year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
        return time.strftime("M%Y-%m", t), float(calendar.timegm((year, month, 1, 0, 0, 0)))
    raise ValueError(f"unknown budget window {window!r}; expected one of {WINDOWS}")


@dataclass(frozen=True)
class CapUsage:
    cap: Cap
    spent_usd: float
    reserved_usd: float
    subject: str | None = None          # which org / team / user / key the cap was checked for

    @property
    def who(self) -> str:
        """``global``, or the level and its name: ``team 'ml'`` (what a refusal names)."""
        if self.cap.scope == "global" or self.subject is None:
            return self.cap.scope
        return f"{self.cap.scope} {self.subject!r}"

    @property
    def remaining_usd(self) -> float:
        return max(0.0, self.cap.limit_usd - self.spent_usd - self.reserved_usd)


@dataclass(frozen=True)
class BudgetSnapshot:
    """What the engine knows about money when it plans: the usage of each cap that applies."""

    usages: tuple[CapUsage, ...] = field(default_factory=tuple)

    @property
    def remaining_usd(self) -> float | None:
        """The tightest remaining amount over all caps, or None when no cap applies."""
        if not self.usages:
            return None
        return min(u.remaining_usd for u in self.usages)

    def tightest(self) -> CapUsage | None:
        return min(self.usages, key=lambda u: u.remaining_usd) if self.usages else None


UNLIMITED = BudgetSnapshot()


def deployment_caps(budgets: Any, *, global_cap_usd: float | None = None, user_cap_usd: float | None = None,
                    cap_window: str = "total", team_cap_usd: float | None = None,
                    org_cap_usd: float | None = None, key_cap_usd: float | None = None) -> tuple[Cap, ...]:
    """The caps a deployment enforces: the policy's ``budgets`` (global, per_org, per_team, per_user,
    per_key), each scope replaced by an operator's override when one is given. Bad overrides raise
    ConfigError."""
    from policies.errors import ConfigError
    overrides = {"global": global_cap_usd, "org": org_cap_usd, "team": team_cap_usd, "user": user_cap_usd,
                 "key": key_cap_usd}
    for scope, value in overrides.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ConfigError(f"{scope}_cap_usd must be a finite, non-negative number of USD, got {value!r}")
    if cap_window not in WINDOWS:
        raise ConfigError(f"cap_window must be one of {', '.join(WINDOWS)}, got {cap_window!r}")
    caps: list[Cap] = []
    for scope, value in overrides.items():
        if value is not None:
            caps.append(Cap(scope, cap_window, float(value)))  # type: ignore[arg-type]
        else:
            configured = budgets.global_ if scope == "global" else getattr(budgets, f"per_{scope}", ())
            caps.extend(Cap(scope, c.window, c.usd) for c in configured)  # type: ignore[arg-type]
    return tuple(caps)
