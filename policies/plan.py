"""A Plan is frozen data: the ordered attempts the runtime will make, and why."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from policies.schema import CheckSpec


@dataclass(frozen=True)
class Attempt:
    model: str                       # catalog alias
    litellm_model: str
    params: tuple[tuple[str, Any], ...]
    checks: tuple[CheckSpec, ...]
    est_cost_usd: float              # worst case: prompt tokens + max_tokens at the policy's price
    reason: str
    rung: int                        # index in the modality's ladder (ascending along the plan)
    strength: int
    consult: "Attempt | None" = None  # the second opinion an agreement check asks for (its own call)

    @property
    def est_total_usd(self) -> float:
        """Worst case of the attempt with its second opinion."""
        return self.est_cost_usd + (self.consult.est_cost_usd if self.consult is not None else 0.0)

    @property
    def max_tokens(self) -> int:
        return int(dict(self.params)["max_tokens"])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "litellm_model": self.litellm_model, "params": dict(self.params),
                "checks": [c.name if not c.params else {"name": c.name, **dict(c.params)} for c in self.checks],
                "est_cost_usd": self.est_cost_usd, "reason": self.reason, "rung": self.rung,
                "strength": self.strength,
                **({"second_opinion": self.consult.to_dict()} if self.consult is not None else {})}


@dataclass(frozen=True)
class Skip:
    model: str
    reason: str


@dataclass(frozen=True)
class Plan:
    attempts: tuple[Attempt, ...]
    score: float
    modality: str
    reason: str
    skipped: tuple[Skip, ...] = field(default_factory=tuple)
    downgraded: bool = False

    @property
    def est_max_cost_usd(self) -> float:
        return sum(a.est_total_usd for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "modality": self.modality, "reason": self.reason,
                "downgraded": self.downgraded, "plan": [a.to_dict() for a in self.attempts],
                "skipped": [asdict(s) for s in self.skipped]}
