"""The joint choice of ``cascade calibrate``: classifier threshold x answer-checker threshold x the agreement
check (as the policy has it asked only once the other checks pass, asked in parallel, or off).

A policy with an agreement check in ``escalation.checks`` is calibrated as three variants over the same
calibration data (the second opinion's recorded answers are read once); each variant is swept over the
(t1, t2) grid and one point is chosen among all of them by the target's rule (:func:`cascade.calibrate.choose_point`);
on ties the order below decides: off (no second-opinion call: the check changed nothing there),
sequential, parallel. The best point of every other
variant is reported as a runner-up, so the cost of each choice is visible.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.schema import CheckSpec, Policy

AGREEMENT = "agreement"
#: agreement modes, in tie-break order
MODES = ("off", "sequential", "parallel")


@dataclass(frozen=True)
class Variant:
    mode: str | None       # None: the policy has no agreement check to vary
    policy: Policy


def agreement_spec(policy: Policy) -> CheckSpec | None:
    """The agreement check of ``escalation.checks`` (the one calibration varies), if any."""
    return next((s for s in policy.escalation.checks if s.name == AGREEMENT), None)


def agreement_mode(policy: Policy) -> str:
    spec = agreement_spec(policy)
    return "off" if spec is None else "parallel" if spec.param("parallel", False) else "sequential"


def _with_checks(policy: Policy, fix: Callable[[tuple[CheckSpec, ...]], tuple[CheckSpec, ...]]) -> Policy:
    escalation = policy.escalation.model_copy(update={"checks": fix(policy.escalation.checks)})
    return policy.model_copy(update={"escalation": escalation})


def with_mode(policy: Policy, mode: str) -> Policy:
    """``policy`` with its ``escalation.checks`` agreement check set to ``mode`` (off: removed)."""
    def fix(specs: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        out = []
        for s in specs:
            if s.name != AGREEMENT:
                out.append(s)
            elif mode != "off":
                params = {**dict(s.params), "parallel": mode == "parallel"}
                out.append(s.model_copy(update={"params": tuple(sorted(params.items()))}))
        return tuple(out)
    return _with_checks(policy, fix)


def variants(policy: Policy) -> list[Variant]:
    """The agreement variants to calibrate (the policy alone when it has no agreement check)."""
    if agreement_spec(policy) is None:
        return [Variant(None, policy)]
    return [Variant(mode, with_mode(policy, mode)) for mode in MODES]


@dataclass(frozen=True)
class Points:
    """Every grid point of every variant, flattened: figures, thresholds and the variant index."""

    quality: np.ndarray
    usd_per_1k: np.ndarray
    strong_share: np.ndarray
    t1: np.ndarray
    t2: np.ndarray          # NaN: no answer checker
    valid: np.ndarray
    variant: np.ndarray

    def point(self, k: int, modes: Sequence[str | None], q_strong: float) -> dict[str, Any]:
        t2 = float(self.t2[k])
        return {"agreement": modes[int(self.variant[k])], "t1": float(self.t1[k]),
                "t2": None if np.isnan(t2) else t2, "quality": float(self.quality[k]),
                "quality_retained": float(self.quality[k] / q_strong) if q_strong else None,
                "usd_per_1k": float(self.usd_per_1k[k]), "strong_share": float(self.strong_share[k])}


def grid_points(sweeps: Sequence[Any], max_t1: float | None) -> Points:
    """The flattened (t2, t1) grids of each variant's sweep (``max_t1``: thresholds[1], which t1 may not pass)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in Points.__dataclass_fields__}
    for i, sw in enumerate(sweeps):
        t1, t2 = np.meshgrid(sw.t1, np.array([np.nan if t is None else t for t in sw.t2]))
        parts["quality"].append(sw.column("quality").ravel())
        parts["usd_per_1k"].append(sw.column("usd_per_1k").ravel())
        parts["strong_share"].append(sw.column("strong_share").ravel())
        parts["t1"].append(t1.ravel())
        parts["t2"].append(t2.ravel())
        parts["valid"].append(np.ones(t1.size, dtype=bool) if max_t1 is None else t1.ravel() <= max_t1)
        parts["variant"].append(np.full(t1.size, i))
    return Points(**{k: np.concatenate(v) for k, v in parts.items()})


def runner_ups(points: Points, chosen: int, choose: Callable[[np.ndarray], int], modes: Sequence[str | None],
               q_strong: float) -> list[dict[str, Any]]:
    """The best point (by the same rule) of every variant but the chosen one's, where one qualifies."""
    out = []
    for i, mode in enumerate(modes):
        if i == points.variant[chosen]:
            continue
        try:
            k = choose(points.valid & (points.variant == i))
        except ConfigError:
            continue
        out.append(points.point(k, modes, q_strong))
    return out
