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

Scope = Literal["global", "user"]
Window = Literal["minute", "hour", "day", "month", "total"]
WINDOWS: tuple[str, ...] = ("minute", "hour", "day", "month", "total")
NANO = 1_000_000_000


def to_nano(usd: float) -> int:
    """USD → integer nano-dollars (rounded half up, so tiny positive costs never vanish)."""
    return int(math.floor(usd * NANO + 0.5))


def from_nano(n: int) -> float:
    return n / NANO


@dataclass(frozen=True)
class Cap:
    """A spending cap: at most ``limit_usd`` per ``window`` for ``scope`` (all traffic, or each user)."""

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
                    cap_window: str = "total") -> tuple[Cap, ...]:
    """The caps a deployment enforces: the policy's ``budgets`` (per_user / global), each scope replaced
    by an operator's override when one is given. Bad overrides raise ConfigError."""
    from policies.errors import ConfigError
    for name, value in (("global_cap_usd", global_cap_usd), ("user_cap_usd", user_cap_usd)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            raise ConfigError(f"{name} must be a finite, non-negative number of USD, got {value!r}")
    if cap_window not in WINDOWS:
        raise ConfigError(f"cap_window must be one of {', '.join(WINDOWS)}, got {cap_window!r}")
    glob = [Cap("global", cap_window, float(global_cap_usd))] if global_cap_usd is not None else \
        [Cap("global", c.window, c.usd) for c in budgets.global_]
    user = [Cap("user", cap_window, float(user_cap_usd))] if user_cap_usd is not None else \
        [Cap("user", c.window, c.usd) for c in budgets.per_user]
    return tuple(glob + user)
