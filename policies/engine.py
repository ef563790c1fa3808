"""The decision engine: ``decide(policy, request, score, budget, health) -> Plan``.

Pure and deterministic: no I/O, no clock, no randomness. The same inputs give the same Plan. Steps:
1. the request's modality picks a ladder (text / vision / document);
2. rungs that lack a required capability, do not fit the context window, or are down are skipped;
3. the classifier score and the routing thresholds choose the first rung (cheap-first or straight up);
4. budget: attempts are kept while the plan's worst-case cost fits what is left; when not even the first
   fits, ``at_cap: downgrade`` plans the cheapest capable model that fits, ``reject`` raises BudgetExceeded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from policies.budget import UNLIMITED, BudgetSnapshot
from policies.errors import BudgetExceeded, EscalationExhausted, InvalidRequestError
from policies.plan import Attempt, Plan, Skip
from policies.request import Request
from policies.schema import JSON_OUTPUT_CAPABILITY, MODALITY_CAPABILITY, ModelSpec, Policy, Rung


@dataclass(frozen=True)
class Health:
    """Models that must not be planned now (open circuit breaker), with the reason."""

    down: frozenset[str] = frozenset()


ALL_HEALTHY = Health()


def required_capabilities(request: Request) -> frozenset[str]:
    need = {MODALITY_CAPABILITY[request.modality]}
    if request.needs_tools:
        need.add("tools")
    if request.json_output is not None:
        need.add(JSON_OUTPUT_CAPABILITY[request.json_output])
    if request.stream:
        need.add("streaming")
    return frozenset(need)


def start_rung(score: float, thresholds: tuple[float, ...]) -> int:
    """Number of thresholds the score reaches: 0 = cheapest rung first."""
    return sum(1 for t in thresholds if score >= t)


def pinned_rung(ladder: tuple[Rung, ...], alias: str | None) -> int:
    """The rung of ``alias`` on ``ladder`` (0 when it is not on it, or None)."""
    return next((i for i, rung in enumerate(ladder) if rung.model == alias), 0) if alias else 0


def _max_tokens(policy: Policy, request: Request, spec: ModelSpec) -> int:
    wanted = request.max_tokens if request.max_tokens is not None else policy.routing.default_max_tokens
    return min(wanted, spec.max_output_tokens)


def _unusable(policy: Policy, request: Request, alias: str, health: Health) -> str | None:
    spec = policy.catalog[alias]
    missing = sorted(required_capabilities(request) - spec.capabilities)
    if missing:
        return f"lacks {', '.join(missing)}"
    need = request.prompt_tokens + _max_tokens(policy, request, spec)
    if need > spec.context_window:
        return f"context window {spec.context_window:,} < {request.prompt_tokens:,} prompt + " \
               f"{_max_tokens(policy, request, spec):,} output tokens"
    if alias in health.down:
        return "unavailable (circuit open)"
    return None


def _attempt(policy: Policy, request: Request, rung: Rung, index: int, reason: str) -> Attempt:
    spec = policy.catalog[rung.model]
    max_tokens = _max_tokens(policy, request, spec)
    checks = policy.checks_for(rung)
    return Attempt(model=rung.model, litellm_model=spec.litellm_model, params=(("max_tokens", max_tokens),),
                   checks=checks, est_cost_usd=spec.price.cost(request.prompt_tokens, max_tokens),
                   reason=reason, rung=index, strength=spec.strength, consult=_consult(policy, request, rung, checks))


def _consult(policy: Policy, request: Request, rung: Rung, checks: tuple) -> Attempt | None:
    """The second opinion of the rung's agreement check, if it has one (same prompt, its own call)."""
    agreement = next((c for c in checks if c.name == "agreement"), None)
    if agreement is None:
        return None
    alias = str(agreement.param("with"))
    spec = policy.catalog[alias]
    max_tokens = _max_tokens(policy, request, spec)
    return Attempt(model=alias, litellm_model=spec.litellm_model, params=(("max_tokens", max_tokens),), checks=(),
                   est_cost_usd=spec.price.cost(request.prompt_tokens, max_tokens),
                   reason=f"second opinion on {rung.model}'s answer", rung=-1, strength=spec.strength)


def decide(policy: Policy, request: Request, score: float, budget: BudgetSnapshot = UNLIMITED,
           health: Health = ALL_HEALTHY, start_at: str | None = None) -> Plan:
    """``start_at``: a catalog alias the plan starts at or above when it is on the request's ladder
    (a session's pin: the model that answered its last turn; never below what the score asks)."""
    ladder = policy.escalation.ladders.get(request.modality)
    if ladder is None:
        raise InvalidRequestError(f"policy {policy.name!r} has no {request.modality} ladder: it cannot serve a "
                                  f"request with {request.n_images} image(s) and {request.n_documents} document(s)")
    skipped, usable = [], []
    for i, rung in enumerate(ladder):
        why = _unusable(policy, request, rung.model, health)
        (skipped.append(Skip(rung.model, why)) if why else usable.append(i))
    if not usable:
        _raise_unserviceable(policy, request, skipped)
    first = start_rung(score, policy.routing.thresholds)
    pinned = pinned_rung(ladder, start_at)
    chosen = [i for i in usable if i >= max(first, pinned)] or [max(usable)]
    reasons = _reasons(policy, ladder, chosen, first, score)
    if pinned > first and chosen[0] == pinned:
        reasons[0] = f"session pinned to {start_at} (the model that answered its last turn; score {score:.3f})"
    attempts = [_attempt(policy, request, ladder[i], i, r) for i, r in zip(chosen, reasons)]
    plan = _fit_budget(policy, request, ladder, usable, attempts, score, tuple(skipped), budget)
    if policy.escalation.check_last_rung or not plan.attempts[-1].checks:
        return plan
    last = replace(plan.attempts[-1], checks=(), consult=None)  # nothing to escalate to: accept what it says
    return replace(plan, attempts=plan.attempts[:-1] + (last,))


def _reasons(policy: Policy, ladder: tuple[Rung, ...], chosen: list[int], first: int, score: float) -> list[str]:
    thresholds = policy.routing.thresholds
    if chosen[0] < first:
        wanted = ladder[first].model if first < len(ladder) else f"rung {first}"
        head = (f"score {score:.3f} asks for {wanted}, which cannot serve this request: "
                f"fallback to the strongest usable model, {ladder[chosen[0]].model}")
    elif first == 0 and chosen[0] > 0:
        head = (f"score {score:.3f} < threshold {thresholds[0]:.3f} asks for {ladder[0].model}, which cannot "
                f"serve this request: starting at {ladder[chosen[0]].model}" if thresholds
                else f"{ladder[0].model} cannot serve this request: starting at {ladder[chosen[0]].model}")
    elif first == 0:
        head = (f"score {score:.3f} < threshold {thresholds[0]:.3f}: cheap model first" if thresholds
                else "no thresholds: cheapest rung first")
    else:
        head = f"score {score:.3f} >= threshold {thresholds[first - 1]:.3f}: start at rung {first}"
    out = [head]
    for prev, _ in zip(chosen, chosen[1:]):
        out.append(f"escalation: used if {ladder[prev].model}'s answer fails its checks or the call fails")
    return out


def _fit_budget(policy: Policy, request: Request, ladder: tuple[Rung, ...], usable: list[int],
                attempts: list[Attempt], score: float, skipped: tuple[Skip, ...], budget: BudgetSnapshot) -> Plan:
    limits = [x for x in (policy.budgets.per_request_usd, budget.remaining_usd) if x is not None]
    room = min(limits) if limits else None
    head_reason = attempts[0].reason
    if room is None:
        return Plan(tuple(attempts), score, request.modality, head_reason, skipped)
    kept, total = [], 0.0
    for a in attempts:
        if total + a.est_total_usd > room:
            skipped += (Skip(a.model, f"budget: {worst_case(request, a)} would exceed the {usd(room - total)} left"),)
            break
        kept.append(a)
        total += a.est_total_usd
    if kept:
        return Plan(tuple(kept), score, request.modality, head_reason, skipped)
    return _downgrade(policy, request, ladder, usable, attempts[0], score, skipped, budget, room)


def _downgrade(policy: Policy, request: Request, ladder: tuple[Rung, ...], usable: list[int], planned: Attempt,
               score: float, skipped: tuple[Skip, ...], budget: BudgetSnapshot, room: float) -> Plan:
    """The cheapest capable model within ``room`` (``at_cap: downgrade``), else BudgetExceeded naming the
    planned model, its worst case, the limit, and which model would fit."""
    fits = [a for a in (_attempt(policy, request, ladder[i], i, "") for i in usable) if a.est_total_usd <= room]
    cheapest = min(fits, key=lambda a: (a.est_total_usd, a.rung)) if fits else None
    if cheapest is not None and policy.budgets.at_cap == "downgrade":
        reason = f"budget: downgraded to {cheapest.model}, the cheapest capable model within {usd(room)}"
        attempt = Attempt(**{**cheapest.__dict__, "reason": reason})
        return Plan((attempt,), score, request.modality, reason, skipped, downgraded=True)
    if cheapest is not None:
        outcome = (f"{cheapest.model} fits ({usd(cheapest.est_total_usd)}) but the policy's at_cap: reject "
                   "does not downgrade")
    else:
        lowest = min((_attempt(policy, request, ladder[i], i, "") for i in usable), key=lambda a: a.est_total_usd)
        outcome = (f"no capable model fits (the cheapest, {lowest.model}, needs {usd(lowest.est_total_usd)}): "
                   "ask for fewer max_tokens or raise the budget")
    tight = budget.tightest()
    per_request = policy.budgets.per_request_usd
    if tight is None or (per_request is not None and per_request <= tight.remaining_usd):
        raise BudgetExceeded(f"{worst_case(request, planned)} exceeds the per-request budget of {usd(room)}; "
                             f"{outcome}", scope="request", window="request", limit_usd=per_request)
    cap = tight.cap
    wanted = planned if policy.budgets.at_cap == "reject" else min(
        (_attempt(policy, request, ladder[i], i, "") for i in usable), key=lambda a: a.est_total_usd)
    in_flight = tight.reserved_usd > 0 and all(wanted.est_total_usd <= u.cap.limit_usd - u.spent_usd
                                               for u in budget.usages)
    if in_flight:
        outcome += f"; {usd(tight.reserved_usd)} of it is held by requests in flight: retry when they settle"
    raise BudgetExceeded(f"{worst_case(request, planned)} exceeds what the {tight.who} budget of "
                         f"{usd(cap.limit_usd)} per {cap.window} leaves ({usd(tight.remaining_usd)}); {outcome}",
                         scope=cap.scope, window=cap.window, limit_usd=cap.limit_usd, in_flight=in_flight)


def worst_case(request: Request, attempt: Attempt) -> str:
    """``gpt-4o's worst case $0.01272 (1,000 prompt + 1,024 max_tokens from routing.default_max_tokens)``."""
    source = "" if request.max_tokens is not None else " from routing.default_max_tokens"
    second = (f", with {attempt.consult.model}'s second opinion" if attempt.consult is not None else "")
    return (f"{attempt.model}'s worst case {usd(attempt.est_total_usd)} ({request.prompt_tokens:,} prompt + "
            f"{attempt.max_tokens:,} max_tokens{source}{second})")


def usd(x: float) -> str:
    """Dollars to four significant digits, without trailing zeros: ``$0.01272``, ``$0.001``, ``$20``."""
    return "$" + (f"{float(f'{x:.4g}'):.10f}".rstrip("0").rstrip(".") or "0")


def _raise_unserviceable(policy: Policy, request: Request, skipped: list[Skip]) -> None:
    detail = "; ".join(f"{s.model}: {s.reason}" for s in skipped)
    if any("circuit open" in s.reason for s in skipped):
        raise EscalationExhausted(f"every capable model is unavailable: {detail}")
    raise InvalidRequestError(f"no model of policy {policy.name!r} can serve this {request.modality} request: {detail}")
