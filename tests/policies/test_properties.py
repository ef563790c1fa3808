"""Properties of ``decide`` over generated policies, requests, scores, budgets and health."""
from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from policies.budget import BudgetSnapshot, Cap, CapUsage
from policies.engine import Health, decide, required_capabilities, start_rung
from policies.errors import BudgetExceeded, EscalationExhausted, InvalidRequestError
from policies.plan import Plan
from policies.request import Request
from policies.schema import Capability, Policy

CAPABILITIES = get_args(Capability)
LADDER_CAPABILITY = {"text": "text", "vision": "vision", "document": "document_ocr"}
EXPECTED_ERRORS = (InvalidRequestError, EscalationExhausted, BudgetExceeded)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)

money = st.floats(min_value=0.0, max_value=2.0, allow_nan=False, allow_infinity=False)
# Strategies are built once at import: building them inside @composite functions costs more than the test.
_caps = st.integers(min_value=0, max_value=2 ** len(CAPABILITIES) - 1)    # a bit mask: one draw, not one per capability
_price = st.fixed_dictionaries({"input_per_1m": st.floats(0.0, 30.0), "output_per_1m": st.floats(0.0, 60.0)})
_window = st.integers(min_value=1, max_value=200_000)
_max_output = st.integers(min_value=1, max_value=20_000)
_strength = st.integers(min_value=0, max_value=20)
_n_models = st.integers(min_value=1, max_value=5)
_per_request = st.none() | money | st.floats(0.0, 0.01)
_at_cap = st.sampled_from(["downgrade", "reject"])
_default_max_tokens = st.integers(1, 8192)
_fraction = st.floats(0.0, 1.0)


@st.composite
def model_specs(draw, force_text: bool) -> dict:
    mask = draw(_caps)
    caps = {c for bit, c in enumerate(CAPABILITIES) if mask >> bit & 1}
    if force_text:
        caps.add("text")
    window = draw(_window)
    return {
        "litellm_model": "openai/generated",
        "price": draw(_price),
        "context_window": window,
        "max_output_tokens": min(window, draw(_max_output)),
        "capabilities": sorted(caps),
        "strength": draw(_strength),
    }


_text_model, _any_model = model_specs(force_text=True), model_specs(force_text=False)


@st.composite
def generated_policies(draw) -> Policy:
    n = draw(_n_models)
    catalog = {f"m{i}": draw(_text_model if i == 0 else _any_model) for i in range(n)}
    ladders = {}
    for modality, cap in LADDER_CAPABILITY.items():
        capable = sorted((a for a, s in catalog.items() if cap in s["capabilities"]),
                         key=lambda a: (catalog[a]["strength"], a))
        if modality != "text":
            if not capable or not draw(st.booleans()):
                continue
        # a sub-ladder: keep a non-empty subset, still sorted by strength
        keep = [draw(st.booleans()) for _ in capable]
        rungs = [a for a, k in zip(capable, keep) if k] or capable[-1:]
        ladders[modality] = rungs
    n_thresholds = draw(st.integers(min_value=0, max_value=len(ladders["text"]) - 1))
    thresholds = sorted(draw(_fraction) for _ in range(n_thresholds))
    budgets = {"at_cap": draw(_at_cap)}
    per_request = draw(_per_request)
    if per_request is not None:
        budgets["per_request_usd"] = per_request
    return Policy.model_validate({
        "name": "generated",
        "catalog": catalog,
        "routing": {"thresholds": thresholds, "default_max_tokens": draw(_default_max_tokens)},
        "escalation": {"ladders": ladders, "checks": ["non_empty"]},
        "budgets": budgets,
    })


requests = st.builds(
    Request,
    text=st.just("generated prompt"),
    prompt_tokens=st.integers(min_value=0, max_value=150_000),
    max_tokens=st.none() | st.integers(min_value=1, max_value=30_000),
    n_images=st.integers(min_value=0, max_value=2),
    n_documents=st.sampled_from([0, 0, 0, 1, 2]),
    needs_tools=st.booleans(),
    json_output=st.sampled_from([None, "json_object", "json_schema"]),
    stream=st.booleans(),
    user=st.none() | st.just("alice"),
)


cap_usages = st.builds(
    CapUsage,
    st.builds(Cap, st.sampled_from(["global", "user"]), st.sampled_from(["minute", "hour", "day", "month", "total"]),
              st.floats(0.0, 1.0)),
    st.floats(0.0, 1.0),
    st.floats(0.0, 0.5),
)
budgets = st.builds(BudgetSnapshot, st.lists(cap_usages, max_size=2).map(tuple))
scores = st.floats(min_value=0.0, max_value=1.0)


@dataclass(frozen=True)
class Case:
    policy: Policy
    request: Request
    score: float
    budget: BudgetSnapshot
    health: Health


_policies = generated_policies()


@st.composite
def cases(draw) -> Case:
    policy = draw(_policies)
    down = frozenset(alias for alias in sorted(policy.catalog) if draw(st.booleans()))
    return Case(policy, draw(requests), draw(scores), draw(budgets), Health(down))


CASES = cases()


def run(case: Case) -> Plan | Exception:
    try:
        return decide(case.policy, case.request, case.score, case.budget, case.health)
    except EXPECTED_ERRORS as exc:      # anything else is a bug and fails the property
        return exc


def spec(case: Case, alias: str):
    return case.policy.catalog[alias]


@PROPERTY_SETTINGS
@given(CASES)
def test_never_plans_a_model_lacking_a_required_capability(case):
    plan = run(case)
    if isinstance(plan, Plan):
        need = required_capabilities(case.request)
        for a in plan.attempts:
            assert need <= spec(case, a.model).capabilities, (a.model, need)
            assert a.model not in case.health.down
            assert a.model in [r.model for r in case.policy.escalation.ladders[case.request.modality]]


@PROPERTY_SETTINGS
@given(CASES)
def test_never_plans_past_a_budget_cap(case):
    plan = run(case)
    if isinstance(plan, Plan):
        assert plan.attempts, "a plan always has at least one attempt"
        limits = [x for x in (case.policy.budgets.per_request_usd, case.budget.remaining_usd) if x is not None]
        if limits:
            assert sum(a.est_cost_usd for a in plan.attempts) <= min(limits)
        if plan.downgraded:
            assert len(plan.attempts) == 1 and case.policy.budgets.at_cap == "downgrade"


@PROPERTY_SETTINGS
@given(CASES)
def test_the_ladder_only_climbs(case):
    plan = run(case)
    if isinstance(plan, Plan):
        rungs = [a.rung for a in plan.attempts]
        assert all(a < b for a, b in zip(rungs, rungs[1:])), rungs
        ladder = case.policy.escalation.ladders[case.request.modality]
        assert all(ladder[a.rung].model == a.model for a in plan.attempts)
        strengths = [a.strength for a in plan.attempts]
        assert strengths == sorted(strengths)
        if case.policy.budgets.per_request_usd is None and not case.budget.usages:
            # no budget limit: nothing usable at or above the start rung is dropped
            skipped = {s.model for s in plan.skipped}
            usable = [i for i, r in enumerate(ladder) if r.model not in skipped]
            first = start_rung(case.score, case.policy.routing.thresholds)
            assert rungs == ([i for i in usable if i >= first] or [max(usable)])
            assert not plan.downgraded


@PROPERTY_SETTINGS
@given(CASES)
def test_same_input_same_plan(case):
    first, second = run(case), run(case)
    if isinstance(first, Plan):
        assert first == second
        assert first.to_dict() == second.to_dict()
    else:
        assert type(first) is type(second) and str(first) == str(second)


@PROPERTY_SETTINGS
@given(CASES)
def test_every_planned_model_fits_its_context_window(case):
    plan = run(case)
    if isinstance(plan, Plan):
        for a in plan.attempts:
            s = spec(case, a.model)
            assert 1 <= a.max_tokens <= s.max_output_tokens
            assert case.request.prompt_tokens + a.max_tokens <= s.context_window
            assert a.est_cost_usd == s.price.cost(case.request.prompt_tokens, a.max_tokens)
