"""Table-driven tests of the pure decision engine: ``decide(policy, request, score, budget, health)``."""
from __future__ import annotations

import pytest

from policies.budget import UNLIMITED, BudgetSnapshot, Cap, CapUsage
from policies.engine import ALL_HEALTHY, Health, decide, required_capabilities, start_rung
from policies.errors import BudgetExceeded, CascadeError, EscalationExhausted, InvalidRequestError
from policies.loader import load_policy, parse_policy
from policies.plan import Plan
from policies.request import Request

# The engine is tested on the default catalog and ladders with thresholds and checks pinned here, so
# that recalibrating the shipped policy does not move these expectations.
DEFAULT = parse_policy("extends: default\nname: default\nrouting: {thresholds: [0.5]}\n"
                       "escalation: {checks: [non_empty, not_truncated, no_refusal]}\n", source="default-pinned.yaml")
BUDGET_STRICT = load_policy("budget-strict")
QUALITY_FIRST = load_policy("quality-first")

THREE_RUNGS_YAML = """\
name: three-rungs
catalog:
  small:
    litellm_model: openai/small
    price: {input_per_1m: 0.1, output_per_1m: 0.2}
    context_window: 32000
    max_output_tokens: 2048
    capabilities: [text]
    strength: 1
  medium:
    litellm_model: openai/medium
    price: {input_per_1m: 1.0, output_per_1m: 2.0}
    context_window: 64000
    max_output_tokens: 4096
    capabilities: [text, json_mode, streaming]
    strength: 5
  large:
    litellm_model: openai/large
    price: {input_per_1m: 5.0, output_per_1m: 15.0}
    context_window: 128000
    max_output_tokens: 8192
    capabilities: [text, json_mode, json_schema, tools, streaming]
    strength: 10
routing:
  thresholds: [0.3, 0.7]
  default_max_tokens: 1000
escalation:
  ladders:
    text: [small, medium, large]
  checks: [non_empty]
"""
THREE = parse_policy(THREE_RUNGS_YAML, source="three.yaml")


def _variant(base_yaml: str, extra: str, name: str = "variant.yaml"):
    return parse_policy(base_yaml + extra, source=name)


def req(prompt_tokens: int = 100, **kw) -> Request:
    return Request(text=kw.pop("text", "hello"), prompt_tokens=prompt_tokens, **kw)


def models(plan: Plan) -> list[str]:
    return [a.model for a in plan.attempts]


def snapshot(remaining: float, *, scope: str = "global", window: str = "day", limit: float = 1.0) -> BudgetSnapshot:
    """A one-cap snapshot leaving ``remaining`` USD (spent + reserved make up the rest)."""
    used = limit - remaining
    return BudgetSnapshot((CapUsage(Cap(scope, window, limit), used * 0.75, used * 0.25),))


def cost(policy, alias: str, prompt_tokens: int, max_tokens: int) -> float:
    return policy.catalog[alias].price.cost(prompt_tokens, max_tokens)


# ---- thresholds: cheap-first below, straight up at/above --------------------------------------------------

@pytest.mark.parametrize("policy, score, expected", [
    (DEFAULT, 0.0, ["deepseek-v2", "gpt-4o"]),
    (DEFAULT, 0.2, ["deepseek-v2", "gpt-4o"]),
    (DEFAULT, 0.4999, ["deepseek-v2", "gpt-4o"]),
    (DEFAULT, 0.5, ["gpt-4o"]),
    (DEFAULT, 0.93, ["gpt-4o"]),
    (DEFAULT, 1.0, ["gpt-4o"]),
    (BUDGET_STRICT, 0.79, ["deepseek-v2", "gpt-4o"]),
    (BUDGET_STRICT, 0.8, ["gpt-4o"]),
    (QUALITY_FIRST, 0.149, ["deepseek-v2", "gpt-4o"]),
    (QUALITY_FIRST, 0.15, ["gpt-4o"]),
    (THREE, 0.0, ["small", "medium", "large"]),
    (THREE, 0.2999, ["small", "medium", "large"]),
    (THREE, 0.3, ["medium", "large"]),
    (THREE, 0.5, ["medium", "large"]),
    (THREE, 0.6999, ["medium", "large"]),
    (THREE, 0.7, ["large"]),
    (THREE, 1.0, ["large"]),
], ids=lambda v: v.name if hasattr(v, "catalog") else None)
def test_score_and_thresholds_pick_the_first_rung(policy, score, expected):
    plan = decide(policy, req(), score)
    assert models(plan) == expected
    assert plan.modality == "text"
    assert plan.score == score
    assert plan.downgraded is False
    assert [a.rung for a in plan.attempts] == sorted({a.rung for a in plan.attempts})
    assert plan.reason == plan.attempts[0].reason


@pytest.mark.parametrize("score, thresholds, expected", [
    (0.0, (), 0), (1.0, (), 0),
    (0.49, (0.5,), 0), (0.5, (0.5,), 1),
    (0.1, (0.3, 0.7), 0), (0.3, (0.3, 0.7), 1), (0.69, (0.3, 0.7), 1), (0.7, (0.3, 0.7), 2),
    (0.5, (0.5, 0.5), 2),
])
def test_start_rung_counts_reached_thresholds(score, thresholds, expected):
    assert start_rung(score, thresholds) == expected


def test_attempts_carry_model_params_checks_and_cost():
    plan = decide(DEFAULT, req(prompt_tokens=1000), 0.1)
    v2, gpt = plan.attempts
    assert (v2.model, v2.litellm_model, v2.rung, v2.strength) == ("deepseek-v2", "deepseek/deepseek-chat", 0, 1)
    assert (gpt.model, gpt.litellm_model, gpt.rung, gpt.strength) == ("gpt-4o", "openai/gpt-4o", 1, 10)
    assert v2.max_tokens == gpt.max_tokens == DEFAULT.routing.default_max_tokens == 1024
    assert v2.est_cost_usd == pytest.approx((1000 * 0.14 + 1024 * 0.28) / 1e6)
    assert gpt.est_cost_usd == pytest.approx((1000 * 2.50 + 1024 * 10.0) / 1e6)
    assert [c.name for c in v2.checks] == ["non_empty", "not_truncated", "no_refusal"]
    assert plan.est_max_cost_usd == pytest.approx(v2.est_cost_usd + gpt.est_cost_usd)


def test_request_max_tokens_is_clamped_to_the_models_max_output():
    plan = decide(DEFAULT, req(prompt_tokens=10, max_tokens=10_000), 0.1)
    assert [a.max_tokens for a in plan.attempts] == [4096, 10_000]


def test_rung_level_checks_replace_the_ladders():
    policy = parse_policy(THREE_RUNGS_YAML.replace(
        "text: [small, medium, large]",
        "text: [small, {model: medium, checks: [valid_json]}, large]"), source="rung-checks.yaml")
    plan = decide(policy, req(), 0.0)
    assert [[c.name for c in a.checks] for a in plan.attempts] == [["non_empty"], ["valid_json"], ["non_empty"]]


# ---- reasons ----------------------------------------------------------------------------------------------

def test_cheap_first_reason_mentions_score_and_threshold():
    plan = decide(DEFAULT, req(), 0.2)
    assert plan.reason == "score 0.200 < threshold 0.500: cheap model first"
    assert "deepseek-v2" in plan.attempts[1].reason and "fails its checks" in plan.attempts[1].reason


def test_straight_up_reason_mentions_score_and_threshold():
    plan = decide(DEFAULT, req(), 0.9)
    assert plan.reason == "score 0.900 >= threshold 0.500: start at rung 1"


def test_multi_threshold_reason_names_the_threshold_reached():
    assert decide(THREE, req(), 0.45).reason == "score 0.450 >= threshold 0.300: start at rung 1"
    assert decide(THREE, req(), 0.75).reason == "score 0.750 >= threshold 0.700: start at rung 2"


def test_no_thresholds_reason():
    policy = parse_policy(THREE_RUNGS_YAML.replace("thresholds: [0.3, 0.7]", "thresholds: []"), source="n.yaml")
    plan = decide(policy, req(), 0.99)
    assert models(plan) == ["small", "medium", "large"]
    assert "no thresholds" in plan.reason


def test_reason_does_not_claim_cheap_model_first_when_it_was_skipped():
    plan = decide(DEFAULT, req(), 0.2, health=Health(frozenset({"deepseek-v2"})))
    assert models(plan) == ["gpt-4o"]
    assert "cheap model first" not in plan.reason


# ---- modalities -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("score", [0.0, 0.3, 0.5, 0.99])
@pytest.mark.parametrize("n_images", [1, 3])
def test_images_use_the_vision_ladder_only(score, n_images):
    plan = decide(DEFAULT, req(prompt_tokens=1100, n_images=n_images), score)
    assert plan.modality == "vision"
    assert models(plan) == (["deepseek-vl2", "gpt-4o"] if score < 0.5 else ["gpt-4o"])
    for a in plan.attempts:
        assert "vision" in DEFAULT.catalog[a.model].capabilities
        assert a.model != "deepseek-v2"


@pytest.mark.parametrize("n_images", [0, 2])
def test_documents_go_to_deepseek_ocr_2_first(n_images):
    plan = decide(DEFAULT, req(prompt_tokens=1100, n_documents=1, n_images=n_images), 0.1)
    assert plan.modality == "document"
    assert models(plan) == ["deepseek-ocr-2", "gpt-4o"]
    assert plan.attempts[0].litellm_model == "openai/deepseek-ocr-2"


def test_no_vision_ladder_is_an_invalid_request():
    with pytest.raises(InvalidRequestError) as info:
        decide(THREE, req(n_images=1), 0.1)
    assert "vision" in str(info.value) and "three-rungs" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_no_document_ladder_is_an_invalid_request():
    with pytest.raises(InvalidRequestError, match="document"):
        decide(THREE, req(n_documents=2), 0.1)


# ---- capability requirements ------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, expected_caps", [
    ({}, {"text"}),
    ({"needs_tools": True}, {"text", "tools"}),
    ({"json_output": "json_object"}, {"text", "json_mode"}),
    ({"stream": True}, {"text", "streaming"}),
    ({"n_images": 1, "json_output": "json_object"}, {"vision", "json_mode"}),
    ({"json_output": "json_schema"}, {"text", "json_schema"}),
    ({"n_images": 1, "json_output": "json_schema", "needs_tools": True}, {"vision", "json_schema", "tools"}),
    ({"n_documents": 1, "stream": True}, {"document_ocr", "streaming"}),
])
def test_required_capabilities(flags, expected_caps):
    assert required_capabilities(req(**flags)) == frozenset(expected_caps)


@pytest.mark.parametrize("flags, score, expected, skipped", [
    ({"json_output": "json_object"}, 0.0, ["medium", "large"], {"small": "lacks json_mode"}),
    ({"stream": True}, 0.0, ["medium", "large"], {"small": "lacks streaming"}),
    ({"needs_tools": True}, 0.0, ["large"], {"small": "lacks tools", "medium": "lacks tools"}),
    ({"needs_tools": True, "json_output": "json_object"}, 0.5, ["large"],
     {"small": "lacks json_mode, tools", "medium": "lacks tools"}),
    ({"json_output": "json_object", "stream": True}, 0.9, ["large"], {"small": "lacks json_mode, streaming"}),
    ({"json_output": "json_schema"}, 0.0, ["large"], {"small": "lacks json_schema", "medium": "lacks json_schema"}),
])
def test_requirements_filter_models(flags, score, expected, skipped):
    plan = decide(THREE, req(**flags), score)
    assert models(plan) == expected
    assert {s.model: s.reason for s in plan.skipped} == skipped
    need = required_capabilities(req(**flags))
    assert all(need <= THREE.catalog[m].capabilities for m in models(plan))


@pytest.mark.parametrize("flags, expected", [
    ({"n_images": 1, "json_output": "json_object"}, ["deepseek-vl2", "gpt-4o"]),  # VL2 has JSON mode,
    ({"n_images": 1, "json_output": "json_schema"}, ["gpt-4o"]),     # not structured outputs,
    ({"n_images": 1, "needs_tools": True}, ["gpt-4o"]),             # nor tools
    ({"json_output": "json_schema"}, ["gpt-4o"]),                    # DeepSeek-V2: no structured outputs
    ({"n_images": 1, "stream": True}, ["deepseek-vl2", "gpt-4o"]),
    ({"n_documents": 1, "needs_tools": True}, ["gpt-4o"]),
    ({"needs_tools": True, "json_output": "json_object", "stream": True}, ["deepseek-v2", "gpt-4o"]),
])
def test_requirements_filter_models_of_the_default_policy(flags, expected):
    assert models(decide(DEFAULT, req(prompt_tokens=1100, **flags), 0.1)) == expected


def test_no_capable_model_is_an_invalid_request():
    policy = parse_policy(THREE_RUNGS_YAML.replace("capabilities: [text, json_mode, json_schema, tools, streaming]",
                                                   "capabilities: [text, json_mode, streaming]"), source="nt.yaml")
    with pytest.raises(InvalidRequestError) as info:
        decide(policy, req(needs_tools=True), 0.1)
    message = str(info.value)
    assert "lacks tools" in message and "small" in message and "large" in message


# ---- context windows --------------------------------------------------------------------------------------

def test_prompt_too_long_for_vl2_skips_it():
    # VL2: 4,096-token window, 1,024 output tokens reserved -> at most 3,072 prompt tokens.
    fits = decide(DEFAULT, req(prompt_tokens=3072, n_images=1), 0.1)
    assert models(fits) == ["deepseek-vl2", "gpt-4o"]
    too_long = decide(DEFAULT, req(prompt_tokens=3073, n_images=1), 0.1)
    assert models(too_long) == ["gpt-4o"]
    (skip,) = too_long.skipped
    assert skip.model == "deepseek-vl2"
    assert "context window 4,096" in skip.reason and "3,073 prompt" in skip.reason


def test_smaller_max_tokens_lets_vl2_fit():
    assert models(decide(DEFAULT, req(prompt_tokens=3500, n_images=1, max_tokens=500), 0.1)) == \
        ["deepseek-vl2", "gpt-4o"]


def test_context_fit_in_a_three_rung_ladder():
    plan = decide(THREE, req(prompt_tokens=40_000), 0.0)
    assert models(plan) == ["medium", "large"]
    assert plan.skipped[0].model == "small" and "context window 32,000" in plan.skipped[0].reason
    assert models(decide(THREE, req(prompt_tokens=100_000), 0.0)) == ["large"]


def test_prompt_too_long_for_every_model_is_an_invalid_request():
    with pytest.raises(InvalidRequestError, match="context window"):
        decide(DEFAULT, req(prompt_tokens=200_000), 0.1)


# ---- health -----------------------------------------------------------------------------------------------

def test_circuit_open_model_is_skipped():
    plan = decide(THREE, req(), 0.0, health=Health(frozenset({"medium"})))
    assert models(plan) == ["small", "large"]
    assert [(s.model, s.reason) for s in plan.skipped] == [("medium", "unavailable (circuit open)")]


def test_fallback_to_strongest_usable_lower_rung_when_strong_is_down():
    plan = decide(THREE, req(), 0.9, health=Health(frozenset({"large"})))
    assert models(plan) == ["medium"]
    assert "fallback" in plan.reason and "score 0.900" in plan.reason and "large" in plan.reason
    plan = decide(DEFAULT, req(), 0.9, health=Health(frozenset({"gpt-4o"})))
    assert models(plan) == ["deepseek-v2"]
    assert "fallback to the strongest usable model" in plan.reason


def test_fallback_only_to_a_model_that_fits():
    # small's window is too small, large is down: the fallback is medium, never small.
    plan = decide(THREE, req(prompt_tokens=50_000), 0.8, health=Health(frozenset({"large"})))
    assert models(plan) == ["medium"]


def test_vision_request_falls_back_to_vl2_when_gpt4o_is_down():
    plan = decide(DEFAULT, req(prompt_tokens=1100, n_images=1), 0.9, health=Health(frozenset({"gpt-4o"})))
    assert models(plan) == ["deepseek-vl2"]


@pytest.mark.parametrize("policy, down, flags", [
    (DEFAULT, {"deepseek-v2", "gpt-4o"}, {}),
    (DEFAULT, {"deepseek-vl2", "gpt-4o"}, {"n_images": 1}),
    (THREE, {"small", "medium", "large"}, {}),
    (THREE, {"medium", "large"}, {"json_output": "json_object"}),   # small lacks json_mode, the rest are down
])
def test_all_capable_models_down_is_escalation_exhausted(policy, down, flags):
    with pytest.raises(EscalationExhausted) as info:
        decide(policy, req(prompt_tokens=1100, **flags), 0.1, health=Health(frozenset(down)))
    assert "unavailable" in str(info.value)
    for model in down:
        assert model in str(info.value)


def test_down_model_outside_the_ladder_changes_nothing():
    assert decide(DEFAULT, req(), 0.1, health=Health(frozenset({"deepseek-vl2"}))) == decide(DEFAULT, req(), 0.1)


# ---- budgets ----------------------------------------------------------------------------------------------

PER_REQUEST_5M = parse_policy("extends: default\nname: tight\nbudgets: {per_request_usd: 0.005}\n")
PER_REQUEST_5M_REJECT = parse_policy("extends: default\nname: tight-reject\n"
                                     "budgets: {per_request_usd: 0.005, at_cap: reject}\n")
GLOBAL_REJECT = parse_policy("extends: default\nname: reject\nbudgets: {at_cap: reject}\n")
V2_COST = cost(DEFAULT, "deepseek-v2", 1000, 1024)      # ~0.00043
GPT_COST = cost(DEFAULT, "gpt-4o", 1000, 1024)          # ~0.0127


def test_default_per_request_cap_keeps_the_whole_ladder():
    plan = decide(DEFAULT, req(prompt_tokens=1000), 0.1)
    assert models(plan) == ["deepseek-v2", "gpt-4o"] and plan.skipped == ()


def test_per_request_cap_truncates_the_ladder():
    plan = decide(PER_REQUEST_5M, req(prompt_tokens=1000), 0.1)
    assert models(plan) == ["deepseek-v2"]
    assert plan.downgraded is False
    (skip,) = plan.skipped
    assert skip.model == "gpt-4o" and skip.reason.startswith("budget:")
    assert plan.est_max_cost_usd <= 0.005


def test_per_request_cap_downgrades_a_strong_start():
    plan = decide(PER_REQUEST_5M, req(prompt_tokens=1000), 0.9)
    assert models(plan) == ["deepseek-v2"]
    assert plan.downgraded is True
    assert "downgraded to deepseek-v2" in plan.reason and plan.attempts[0].reason == plan.reason
    assert plan.attempts[0].est_cost_usd == pytest.approx(V2_COST)


def test_per_request_cap_reject_raises_budget_exceeded_with_scope_request():
    with pytest.raises(BudgetExceeded) as info:
        decide(PER_REQUEST_5M_REJECT, req(prompt_tokens=1000), 0.9)
    exc = info.value
    assert (exc.scope, exc.window, exc.limit_usd) == ("request", "request", 0.005)
    assert "per-request" in str(exc)
    # ...while a cheap-first plan under reject is truncated, not refused
    assert models(decide(PER_REQUEST_5M_REJECT, req(prompt_tokens=1000), 0.1)) == ["deepseek-v2"]


@pytest.mark.parametrize("scope", ["global", "user"])
def test_cap_snapshot_leaves_room_only_for_the_cheap_model(scope):
    budget = snapshot(0.005, scope=scope)
    low = decide(DEFAULT, req(prompt_tokens=1000), 0.1, budget)
    assert models(low) == ["deepseek-v2"] and not low.downgraded
    high = decide(DEFAULT, req(prompt_tokens=1000), 0.9, budget)
    assert models(high) == ["deepseek-v2"] and high.downgraded
    assert high.est_max_cost_usd <= budget.remaining_usd


def test_snapshot_with_plenty_left_changes_nothing():
    budget = snapshot(0.9)
    assert decide(DEFAULT, req(prompt_tokens=1000), 0.1, budget).attempts == \
        decide(DEFAULT, req(prompt_tokens=1000), 0.1).attempts


def test_tightest_of_several_caps_applies():
    budget = BudgetSnapshot((CapUsage(Cap("global", "month", 100.0), 1.0, 0.0),
                             CapUsage(Cap("user", "day", 1.0), 0.99, 0.005)))   # user has 0.005 left
    assert budget.remaining_usd == pytest.approx(0.005)
    assert models(decide(DEFAULT, req(prompt_tokens=1000), 0.1, budget)) == ["deepseek-v2"]


def test_downgrade_picks_the_cheapest_capable_model_that_fits():
    # three rungs, score says "large"; only small and medium fit under the room: cheapest wins.
    room = cost(THREE, "medium", 100, 1000) + 1e-9
    plan = decide(THREE, req(), 0.9, snapshot(room))
    assert models(plan) == ["small"] and plan.downgraded
    # json needed: small lacks json_mode, so medium is the cheapest *capable* model
    plan = decide(THREE, req(json_output="json_object"), 0.9, snapshot(room))
    assert models(plan) == ["medium"] and plan.downgraded
    assert plan.attempts[0].est_cost_usd <= room


def test_downgrade_never_picks_a_down_or_too_small_model():
    room = cost(THREE, "medium", 40_000, 1000) + 1e-9
    plan = decide(THREE, req(prompt_tokens=40_000), 0.9, snapshot(room))   # small's window is too small
    assert models(plan) == ["medium"] and plan.downgraded
    with pytest.raises(BudgetExceeded):
        decide(THREE, req(prompt_tokens=40_000), 0.9, snapshot(room), Health(frozenset({"medium"})))


@pytest.mark.parametrize("scope, window", [("global", "day"), ("user", "month"), ("global", "total")])
def test_cap_reject_raises_budget_exceeded_with_scope_and_window(scope, window):
    budget = snapshot(0.005, scope=scope, window=window, limit=2.0)
    with pytest.raises(BudgetExceeded) as info:
        decide(GLOBAL_REJECT, req(prompt_tokens=1000), 0.9, budget)
    exc = info.value
    assert (exc.scope, exc.window, exc.limit_usd) == (scope, window, 2.0)
    assert scope in str(exc) and window in str(exc)


@pytest.mark.parametrize("policy", [DEFAULT, GLOBAL_REJECT], ids=["downgrade", "reject"])
def test_nothing_fits_raises_budget_exceeded(policy):
    budget = snapshot(V2_COST / 2, scope="user", window="hour")
    with pytest.raises(BudgetExceeded) as info:
        decide(policy, req(prompt_tokens=1000), 0.1, budget)
    assert (info.value.scope, info.value.window) == ("user", "hour")
    assert "no capable model fits" in str(info.value)


def test_nothing_fits_the_per_request_cap_names_the_request_scope():
    policy = parse_policy("extends: default\nname: tiny\nbudgets: {per_request_usd: 0.0000001}\n")
    with pytest.raises(BudgetExceeded) as info:
        decide(policy, req(prompt_tokens=1000), 0.1, snapshot(0.5))
    assert (info.value.scope, info.value.window) == ("request", "request")


def test_exhausted_cap_with_zero_left():
    budget = BudgetSnapshot((CapUsage(Cap("global", "day", 1.0), 0.8, 0.5),))   # over-committed
    assert budget.remaining_usd == 0.0
    with pytest.raises(BudgetExceeded) as info:
        decide(DEFAULT, req(), 0.1, budget)
    assert info.value.scope == "global"


PER_REQUEST_1M_REJECT = parse_policy("extends: default\nname: r\nbudgets: {per_request_usd: 0.001, at_cap: reject}\n")
AGREE_REJECT = parse_policy("extends: default\nname: a\nrouting: {thresholds: [0.5]}\nbudgets: {per_request_usd: "
                            "0.013, at_cap: reject}\nescalation:\n  ladders:\n    text:\n      - deepseek-v2\n"
                            "      - {model: gpt-4o, checks: [{name: agreement, with: deepseek-v2}]}\n")


@pytest.mark.parametrize("policy, request_, budget, words", [
    pytest.param(PER_REQUEST_1M_REJECT, req(prompt_tokens=1000), UNLIMITED,
                 [f"gpt-4o's worst case ${GPT_COST:.4g} (1,000 prompt + 1,024 max_tokens from "
                  "routing.default_max_tokens) exceeds the per-request budget of $0.001; ",
                  f"deepseek-v2 fits (${V2_COST:.4g}) but the policy's at_cap: reject does not downgrade"],
                 id="reject-names-the-model-that-fits"),
    pytest.param(PER_REQUEST_1M_REJECT, req(prompt_tokens=1000, max_tokens=200), UNLIMITED,
                 ["(1,000 prompt + 200 max_tokens) exceeds the per-request budget of $0.001"],
                 id="max-tokens-asked-for"),
    pytest.param(DEFAULT, req(prompt_tokens=1000), snapshot(V2_COST / 2, scope="user", window="hour"),
                 [f"gpt-4o's worst case ${GPT_COST:.4g} (1,000 prompt + 1,024 max_tokens from "
                  "routing.default_max_tokens) exceeds what the user budget of $1 per hour leaves ($0.00021",
                  f"no capable model fits (the cheapest, deepseek-v2, needs ${V2_COST:.4g}): ask for fewer "
                  "max_tokens or raise the budget"], id="cap-nothing-fits"),
    pytest.param(AGREE_REJECT, req(prompt_tokens=1000), UNLIMITED,
                 [f"gpt-4o's worst case ${GPT_COST + V2_COST:.4g} (1,000 prompt + 1,024 max_tokens from "
                  "routing.default_max_tokens, with deepseek-v2's second opinion) exceeds the per-request budget "
                  "of $0.013; deepseek-v2 fits"], id="second-opinion-counted"),
])
def test_a_budget_refusal_names_the_model_its_worst_case_and_what_fits(policy, request_, budget, words):
    with pytest.raises(BudgetExceeded) as info:
        decide(policy, request_, 0.9, budget)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_budget_skip_shows_the_worst_case():
    plan = decide(PER_REQUEST_5M, req(prompt_tokens=1000), 0.1)
    (skip,) = plan.skipped
    assert skip.reason == (f"budget: gpt-4o's worst case ${GPT_COST:.4g} (1,000 prompt + 1,024 max_tokens from "
                           f"routing.default_max_tokens) would exceed the ${0.005 - V2_COST:.4g} left")


def test_budget_errors_are_cascade_errors():
    assert issubclass(BudgetExceeded, CascadeError) and issubclass(EscalationExhausted, CascadeError)


# ---- determinism / defaults ------------------------------------------------------------------------------

def test_defaults_are_unlimited_and_all_healthy():
    assert decide(DEFAULT, req(), 0.3) == decide(DEFAULT, req(), 0.3, UNLIMITED, ALL_HEALTHY)


def test_plan_to_dict_is_plain_data():
    import json
    doc = decide(THREE, req(json_output="json_object"), 0.1).to_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["plan"][0]["model"] == "medium" and doc["skipped"] == [{"model": "small", "reason": "lacks json_mode"}]


def test_check_last_rung_false_leaves_the_last_attempt_unchecked():
    from policies.loader import parse_policy
    from policies.request import Request
    from policies.engine import decide
    policy = parse_policy("extends: default\nname: x\nescalation: {check_last_rung: false}\n", source="x.yaml")
    plan = decide(policy, Request(text="q", prompt_tokens=10), 0.1)
    assert plan.attempts[0].checks and plan.attempts[-1].checks == ()
    single = decide(policy, Request(text="q", prompt_tokens=10), 0.9)
    assert [a.model for a in single.attempts] == ["gpt-4o"] and single.attempts[0].checks == ()
