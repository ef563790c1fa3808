"""The YAML loader: one test per class of mistake, each naming the file, the line and the field path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest

from policies.errors import CascadeError, ConfigError
from policies.loader import BUILTIN_POLICIES, builtin_policy_path, load_policy, parse_policy
from policies.schema import Policy

GOOD = """\
name: mini
description: a small valid policy
catalog:
  cheap:
    litellm_model: deepseek/deepseek-chat
    api_key_env: DEEPSEEK_API_KEY
    price: {input_per_1m: 0.14, output_per_1m: 0.28}
    context_window: 128000
    capabilities: [text, json_mode]
    strength: 1
  strong:
    litellm_model: openai/gpt-4o
    price:
      input_per_1m: 2.5
      output_per_1m: 10
    context_window: 128000
    capabilities: [text, vision]
    strength: 10
routing:
  thresholds: [0.5]
escalation:
  ladders:
    text:
      - cheap
      - strong
  checks:
    - non_empty
    - {name: min_chars, n: 3}
budgets:
  store: memory://
  per_request_usd: 0.5
  global:
    - {window: day, usd: 10}
"""


def write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_of(text: str, needle: "str | tuple[str, int]", occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``needle`` (or a (needle, occurrence))."""
    if isinstance(needle, tuple):
        needle, occurrence = needle
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the test policy"
    return hits[occurrence - 1]


def load_error(tmp_path: Path, text: str, **kw) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_policy(path, **kw)
    return info.value


def assert_names(exc: ConfigError, path: Path, line: int, field: str) -> None:
    message = str(exc)
    assert f"{path}:{line}: {field}" in message, message
    assert exc.source == str(path)
    assert "Traceback" not in message


def test_the_good_policy_loads(tmp_path):
    policy = load_policy(write(tmp_path, GOOD))
    assert policy.name == "mini"
    assert [r.model for r in policy.escalation.ladders["text"]] == ["cheap", "strong"]
    assert policy.catalog["strong"].price.output_per_1m == 10.0
    assert policy.escalation.checks[1].param("n") == 3
    assert policy.budgets.global_[0].usd == 10.0
    assert policy.catalog["cheap"].max_output_tokens == 4096          # default


# ---- YAML-level mistakes ----------------------------------------------------------------------------------

def test_yaml_syntax_error(tmp_path):
    text = GOOD.replace("description: a small valid policy", "description: a: small valid policy")
    path = tmp_path / "policy.yaml"
    exc = load_error(tmp_path, text)
    line = line_of(text, "description:")
    assert f"{path}:{line}: YAML syntax error" in str(exc)
    assert "mapping values are not allowed" in str(exc)
    assert exc.errors == [(f"{path}:{line}", str(exc).split(f"{path}:{line}: ", 1)[1])]


def test_yaml_syntax_error_unclosed_flow_mapping(tmp_path):
    text = GOOD.replace("price: {input_per_1m: 0.14, output_per_1m: 0.28}", "price: {input_per_1m: 0.14")
    exc = load_error(tmp_path, text)
    assert f"{tmp_path / 'policy.yaml'}:" in str(exc) and "YAML syntax error" in str(exc)
    assert str(exc).split(":")[1].isdigit()


def test_two_documents_are_a_syntax_error(tmp_path):
    exc = load_error(tmp_path, GOOD + "---\nname: other\n")
    assert "YAML syntax error" in str(exc)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(tmp_path, text):
    exc = load_error(tmp_path, text)
    assert str(exc) == f"{tmp_path / 'policy.yaml'}:1: the policy file is empty"


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_non_mapping_file(tmp_path, text, kind):
    exc = load_error(tmp_path, text)
    assert f"{tmp_path / 'policy.yaml'}:1: a policy must be a YAML mapping, got {kind}" == str(exc)


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_policy(missing)
    assert str(missing) in str(info.value) and "no such policy file" in str(info.value)
    assert "default" in str(info.value)                       # lists the built-ins


def test_unreadable_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="cannot read policy file") as info:
        load_policy(path)
    assert str(path) in str(info.value)


def test_unknown_builtin_name_is_a_missing_file():
    with pytest.raises(ConfigError, match="no such policy file"):
        load_policy("budget_strict")


def test_config_error_is_a_value_error_and_cascade_error():
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, CascadeError)


# ---- schema mistakes, one per class -----------------------------------------------------------------------

@pytest.mark.parametrize("old, new, needle, field, words", [
    pytest.param("      - strong\n", "      - gpt-5\n", "- gpt-5", "escalation.ladders.text.1",
                 ["unknown model 'gpt-5'", "cheap, strong"], id="unknown-model-in-ladder"),
    pytest.param("thresholds: [0.5]", "thresholds: [1.5]", "thresholds:", "routing.thresholds.0",
                 ["less than or equal to 1"], id="threshold-above-1"),
    pytest.param("thresholds: [0.5]", "thresholds: [-0.1]", "thresholds:", "routing.thresholds.0",
                 ["greater than or equal to 0"], id="threshold-below-0"),
    pytest.param("per_request_usd: 0.5", "per_request_usd: -0.5", "per_request_usd", "budgets.per_request_usd",
                 ["greater than or equal to 0"], id="negative-per-request-budget"),
    pytest.param("{window: day, usd: 10}", "{window: day, usd: -10}", "window: day", "budgets.global.0.usd",
                 ["greater than or equal to 0"], id="negative-global-cap"),
    pytest.param("{window: day, usd: 10}", "{window: fortnight, usd: 10}", "fortnight", "budgets.global.0.window",
                 ["'fortnight' is not one of: minute, hour, day, month, total"], id="bad-cap-window"),
    pytest.param("    - non_empty\n", "    - telepathy\n", "- telepathy", "escalation.checks.0",
                 ["unknown check 'telepathy'", "known checks:", "non_empty"], id="unknown-check"),
    pytest.param("{name: min_chars, n: 3}", "{name: min_chars}", "name: min_chars", "escalation.checks.1",
                 ["check 'min_chars' needs parameter 'n'"], id="check-missing-param"),
    pytest.param("{name: min_chars, n: 3}", "{name: min_chars, n: 3, m: 4}", "name: min_chars", "escalation.checks.1",
                 ["check 'min_chars' has no parameter 'm'", "allowed: n"], id="check-unknown-param"),
    pytest.param("{name: min_chars, n: 3}", "{name: min_chars, n: three}", "name: min_chars", "escalation.checks.1",
                 ["n must be int"], id="check-param-wrong-type"),
    pytest.param("{name: min_chars, n: 3}", "{name: min_chars, n: -3}", "name: min_chars", "escalation.checks.1",
                 ["n must be >= 0"], id="check-param-negative"),
    pytest.param("{name: min_chars, n: 3}", "{name: answer_format, pattern: \"(unclosed\"}", "answer_format",
                 "escalation.checks.1", ["invalid regex '(unclosed'"], id="check-invalid-regex"),
    pytest.param("{name: min_chars, n: 3}", "{name: json_schema, schema: not-a-mapping}", "json_schema",
                 "escalation.checks.1", ["schema must be dict"], id="json-schema-not-a-mapping"),
    pytest.param("{name: min_chars, n: 3}", "{name: answer_checker, threshold: 1.5}", "answer_checker",
                 "escalation.checks.1", ["outside [0, 1]"], id="answer-checker-threshold"),
    pytest.param("{name: min_chars, n: 3}", "{name: custom, callable: no_such_module_xyz:check}", "custom",
                 "escalation.checks.1", ["cannot import callable 'no_such_module_xyz:check'"],
                 id="custom-module-missing"),
    pytest.param("{name: min_chars, n: 3}", "{name: custom, callable: \"json:no_such_function\"}", "custom",
                 "escalation.checks.1", ["cannot import callable 'json:no_such_function'"],
                 id="custom-function-missing"),
    pytest.param("{name: min_chars, n: 3}", "{name: custom, callable: json.loads}", "custom",
                 "escalation.checks.1", ["must look like 'package.module:function'"], id="custom-no-colon"),
    pytest.param("{name: min_chars, n: 3}", "{name: custom, callable: \"json:__doc__\"}", "custom",
                 "escalation.checks.1", ["is not callable"], id="custom-not-callable"),
    pytest.param("capabilities: [text, vision]", "capabilities: [text, telepathy]", "telepathy",
                 "catalog.strong.capabilities.1", ["'telepathy' is not one of: text, vision"], id="unknown-capability"),
    pytest.param("    context_window: 128000\n    capabilities: [text, json_mode]",
                 "    context_window: 1000\n    capabilities: [text, json_mode]", "  cheap:", "catalog.cheap",
                 ["max_output_tokens (4096) exceeds context_window (1000)"], id="output-exceeds-window"),
    pytest.param("      - strong\n", "      - strong\n    vision: [cheap]\n", "vision: [cheap]",
                 "escalation.ladders.vision.0", ["lacks capability 'vision'"], id="ladder-model-lacks-capability"),
    pytest.param("      - strong\n", "      - strong\n    pictures: [strong]\n", "pictures:",
                 "escalation.ladders.pictures", ["key 'pictures' is not one of: text, vision, document"], id="unknown-ladder-modality"),
    pytest.param("    text:\n      - cheap\n      - strong\n", "    text: []\n", "ladders:", "escalation.ladders",
                 ["ladder 'text' is empty"], id="empty-ladder"),
    pytest.param("    text:\n      - cheap\n      - strong\n", "    vision: [strong]\n", "ladders:",
                 "escalation.ladders", ["a 'text' ladder is required"], id="no-text-ladder"),
    pytest.param("thresholds: [0.5]", "thresholds: [0.3, 0.6]", "thresholds:", "routing.thresholds",
                 ["2 thresholds but the text ladder has only 2 rungs"], id="too-many-thresholds"),
    pytest.param("  store: memory://", "  store: memory://\n  at_cap: shrug", "at_cap", "budgets.at_cap",
                 ["'shrug' is not one of: downgrade, reject"], id="bad-at-cap"),
    pytest.param("    strength: 10", "    strength: strong", "strength: strong", "catalog.strong.strength",
                 ["expected a whole number, got the text 'strong'"], id="wrong-type"),
])
def test_schema_mistake_names_file_line_and_field(tmp_path, old, new, needle, field, words):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    exc = load_error(tmp_path, text)
    assert_names(exc, path, line_of(text, needle), field)
    for word in words:
        assert word in str(exc)
    assert str(exc).startswith(f"invalid policy {path}:\n")
    assert any(where.startswith(f"{path}:{line_of(text, needle)}: {field}") for where, _ in exc.errors)


def test_descending_thresholds(tmp_path):
    text = GOOD.replace("thresholds: [0.5]", "thresholds:\n    - 0.7\n    - 0.3").replace(
        "      - cheap\n      - strong\n", "      - cheap\n      - cheap\n      - strong\n")
    path = tmp_path / "policy.yaml"
    exc = load_error(tmp_path, text)
    assert_names(exc, path, line_of(text, "thresholds:"), "routing.thresholds")
    assert "thresholds must be ascending, got [0.7, 0.3]" in str(exc)


@pytest.mark.parametrize("old, new, needle, field", [
    ("name: mini", "name: mini\ncolour: blue", "colour:", "colour"),
    ("    strength: 1\n", "    strength: 1\n    temperature: 0.2\n", "temperature:", "catalog.cheap.temperature"),
    ("      output_per_1m: 10", "      output_per_1m: 10\n      currency: EUR", "currency:",
     "catalog.strong.price.currency"),
    ("  thresholds: [0.5]", "  thresholds: [0.5]\n  threshold: 0.4", "threshold: 0.4", "routing.threshold"),
    ("  checks:\n", "  on_exhaust: raise\n  checks:\n", "on_exhaust", "escalation.on_exhaust"),
    ("    - {window: day, usd: 10}", "    - {window: day, usd: 10, users: 3}", "users: 3", "budgets.global.0.users"),
    ("  store: memory://", "  store: memory://\n  per_user_usd: 1", "per_user_usd", "budgets.per_user_usd"),
    ("name: mini", "name: mini\nretries:\n  rate_limit:\n    attempts: 2\n    backoff: {initial_s: 1, jiter_s: 0}",
     "jiter_s", "retries.rate_limit.backoff.jiter_s"),
    ("name: mini", "name: mini\ncircuit_breaker: {failures: 3, cooldown: 10}", "cooldown:", "circuit_breaker.cooldown"),
], ids=["top", "catalog", "price", "routing", "escalation", "cap", "budgets", "backoff", "circuit"])
def test_unknown_key_anywhere_is_rejected(tmp_path, old, new, needle, field):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    exc = load_error(tmp_path, text)
    assert_names(exc, tmp_path / "policy.yaml", line_of(text, needle), field)
    assert f"unknown field {field.rsplit('.', 1)[-1]!r}" in str(exc)
    assert "Extra inputs" not in str(exc)


@pytest.mark.parametrize("old, new, needle, field", [
    ("    price: {input_per_1m: 0.14, output_per_1m: 0.28}\n", "", "  cheap:", "catalog.cheap.price"),
    ("    strength: 10\n", "", "  strong:", "catalog.strong.strength"),
    ("      output_per_1m: 10\n", "", ("    price:", 2), "catalog.strong.price.output_per_1m"),
    ("    - {window: day, usd: 10}", "    - {window: day}", "window: day", "budgets.global.0.usd"),
    ("name: mini\n", "", "description:", "name"),   # a missing top-level field points at the top of the file
], ids=["price", "strength", "output-price", "cap-usd", "name"])
def test_missing_required_field(tmp_path, old, new, needle, field):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    exc = load_error(tmp_path, text)
    assert_names(exc, tmp_path / "policy.yaml", line_of(text, needle), field)
    assert "required, but missing" in str(exc)


def test_several_mistakes_are_all_reported(tmp_path):
    text = GOOD.replace("thresholds: [0.5]", "thresholds: [1.5]").replace("per_request_usd: 0.5", "per_request_usd: -1")
    exc = load_error(tmp_path, text)
    assert len(exc.errors) == 2
    assert "routing.thresholds.0" in exc.errors[0][0] and "budgets.per_request_usd" in exc.errors[1][0]


# ---- API key variables ------------------------------------------------------------------------------------

KEY_LIKE = "sk-live-4f2a9c-7d1e-secret"


def test_api_key_env_given_a_key_looking_value(tmp_path):
    text = GOOD.replace("api_key_env: DEEPSEEK_API_KEY", f"api_key_env: {KEY_LIKE}")
    exc = load_error(tmp_path, text)
    assert_names(exc, tmp_path / "policy.yaml", line_of(text, "api_key_env"), "catalog.cheap.api_key_env")
    assert "not an environment variable name" in str(exc)


def test_api_key_env_error_does_not_echo_the_key(tmp_path):
    text = GOOD.replace("api_key_env: DEEPSEEK_API_KEY", f"api_key_env: {KEY_LIKE}")
    exc = load_error(tmp_path, text)
    assert KEY_LIKE not in str(exc)
    assert all(KEY_LIKE not in msg for _, msg in exc.errors)


def test_env_name_with_a_trailing_newline_is_rejected(tmp_path):
    text = GOOD.replace("api_key_env: DEEPSEEK_API_KEY", 'api_key_env: "DEEPSEEK_API_KEY\\n"')
    load_error(tmp_path, text)


@pytest.mark.parametrize("field", ["api_key_env", "api_base_env"])
def test_env_name_fields_accept_variable_names(tmp_path, field):
    text = GOOD.replace("api_key_env: DEEPSEEK_API_KEY", f"{field}: _My_Var2")
    assert getattr(load_policy(write(tmp_path, text)).catalog["cheap"], field) == "_My_Var2"


# ---- ${VAR} interpolation ---------------------------------------------------------------------------------

def test_unset_variable_without_default(tmp_path):
    text = GOOD.replace("store: memory://", "store: ${CASCADE_TEST_STORE_UNSET}")
    path = tmp_path / "policy.yaml"
    exc = load_error(tmp_path, text, env={})
    assert_names(exc, path, line_of(text, "store:"), "budgets.store")
    assert "CASCADE_TEST_STORE_UNSET is not set" in str(exc)
    assert "${CASCADE_TEST_STORE_UNSET:-default}" in str(exc)


def test_unset_variable_in_a_list_item(tmp_path):
    text = GOOD.replace("      - strong\n", "      - ${STRONG_MODEL}\n")
    exc = load_error(tmp_path, text, env={})
    assert_names(exc, tmp_path / "policy.yaml", line_of(text, "STRONG_MODEL"), "escalation.ladders.text.1")


def test_variable_with_default_and_set_variable(tmp_path):
    text = GOOD.replace("store: memory://", "store: ${STORE:-sqlite:///tmp/x.db}").replace(
        "litellm_model: openai/gpt-4o", "litellm_model: ${STRONG}").replace(
        "per_request_usd: 0.5", "per_request_usd: ${CAP:-0.25}")
    path = write(tmp_path, text)
    policy = load_policy(path, env={"STRONG": "openai/gpt-4o-mini"})
    assert policy.budgets.store == "sqlite:///tmp/x.db"
    assert policy.catalog["strong"].litellm_model == "openai/gpt-4o-mini"
    assert policy.budgets.per_request_usd == 0.25                    # a string from ${...} still validates
    policy = load_policy(path, env={"STRONG": "openai/o1", "STORE": "memory://", "CAP": "1.5"})
    assert (policy.budgets.store, policy.catalog["strong"].litellm_model, policy.budgets.per_request_usd) == \
        ("memory://", "openai/o1", 1.5)


def test_interpolation_inside_a_longer_string_and_empty_default(tmp_path):
    text = GOOD.replace("description: a small valid policy", "description: 'model=${M} region=${REGION:-} end'")
    policy = load_policy(write(tmp_path, text), env={"M": "v2"})
    assert policy.description == "model=v2 region= end"


def test_interpolation_defaults_to_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_TEST_STRONG_MODEL", "openai/from-environ")
    text = GOOD.replace("litellm_model: openai/gpt-4o", "litellm_model: ${CASCADE_TEST_STRONG_MODEL}")
    assert load_policy(write(tmp_path, text)).catalog["strong"].litellm_model == "openai/from-environ"


def test_default_policy_store_uses_an_env_default():
    assert load_policy("default", env={}).budgets.store == "sqlite:///~/.cascade/spend.db"
    assert load_policy("default", env={"CASCADE_BUDGET_STORE": "memory://"}).budgets.store == "memory://"


# ---- extends ----------------------------------------------------------------------------------------------

def test_extends_default_merges(tmp_path):
    path = write(tmp_path, """\
        extends: default
        name: mine
        routing:
          thresholds: [0.7]
        budgets:
          per_request_usd: 0.1
        """)
    policy, default = load_policy(path), load_policy("default")
    assert policy.name == "mine"
    assert policy.routing.thresholds == (0.7,)
    assert policy.routing.classifier == default.routing.classifier              # sibling key kept
    assert policy.routing.default_max_tokens == default.routing.default_max_tokens
    assert policy.budgets.per_request_usd == 0.1
    assert policy.budgets.at_cap == default.budgets.at_cap
    assert policy.catalog == default.catalog and policy.escalation == default.escalation


def test_extends_replaces_lists_and_adds_catalog_entries(tmp_path):
    path = write(tmp_path, """\
        extends: default
        name: mine
        catalog:
          gpt-4o-mini:
            litellm_model: openai/gpt-4o-mini
            price: {input_per_1m: 0.15, output_per_1m: 0.6}
            context_window: 128000
            capabilities: [text]
            strength: 5
        escalation:
          ladders:
            text: [deepseek-v2, gpt-4o-mini, gpt-4o]
          checks: [non_empty]
        routing:
          thresholds: [0.4, 0.8]
        """)
    policy = load_policy(path)
    assert set(policy.catalog) == {"deepseek-v2", "deepseek-coder", "deepseek-vl2", "deepseek-ocr-2", "gpt-4o", "gpt-4o-mini"}
    assert [r.model for r in policy.escalation.ladders["text"]] == ["deepseek-v2", "gpt-4o-mini", "gpt-4o"]
    assert [r.model for r in policy.escalation.ladders["vision"]] == ["deepseek-vl2", "gpt-4o"]
    assert [c.name for c in policy.escalation.checks] == ["non_empty"]


def test_extends_a_relative_path(tmp_path):
    write(tmp_path, GOOD, "base.yaml")
    (tmp_path / "team").mkdir()
    child = write(tmp_path / "team", "extends: ../base.yaml\nname: child\nrouting: {thresholds: [0.9]}\n", "child.yaml")
    policy = load_policy(child)
    assert policy.name == "child" and policy.routing.thresholds == (0.9,)
    assert set(policy.catalog) == {"cheap", "strong"}


def test_extends_a_missing_policy(tmp_path):
    exc = load_error(tmp_path, "extends: nowhere.yaml\nname: x\n")
    assert str(tmp_path / "policy.yaml") in str(exc) and "extends" in str(exc) and "nowhere.yaml" in str(exc)


def test_extends_cycle_stops(tmp_path):
    write(tmp_path, "extends: b.yaml\nname: a\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(ConfigError, match="extends"):
        load_policy(tmp_path / "a.yaml")


def test_error_in_a_child_of_default_points_at_the_child(tmp_path):
    text = "extends: default\nname: mine\nrouting:\n  thresholds: [0.2, 0.6]\n"
    exc = load_error(tmp_path, text)
    assert_names(exc, tmp_path / "policy.yaml", 4, "routing.thresholds")


def test_extends_a_non_mapping_is_a_config_error(tmp_path):
    write(tmp_path, "- a\n- b\n", "base.yaml")
    with pytest.raises(ConfigError, match="base.yaml"):
        load_policy(write(tmp_path, "extends: base.yaml\nname: x\n"))


def test_extends_error_names_the_line(tmp_path):
    exc = load_error(tmp_path, "name: x\nextends: nowhere.yaml\n")
    assert f"{tmp_path / 'policy.yaml'}:2:" in str(exc)


def test_recursive_yaml_anchor_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_policy(write(tmp_path, "name: &x [*x]\n"))


# ---- built-ins and immutability ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_builtin_policies_load_by_name_and_by_path(name):
    by_name = load_policy(name)
    path = builtin_policy_path(name)
    assert path.is_file() and path.name == f"{name}.yaml"
    by_path = load_policy(path)
    assert by_name == by_path == load_policy(str(path))
    assert by_name.name == name
    assert [r.model for r in by_name.escalation.ladders["text"]] == ["deepseek-v2", "gpt-4o"]
    assert [r.model for r in by_name.escalation.ladders["vision"]] == ["deepseek-vl2", "gpt-4o"]
    assert [r.model for r in by_name.escalation.ladders["document"]] == ["deepseek-ocr-2", "gpt-4o"]


def test_builtin_policies_differ_as_documented():
    default, strict, quality, match = (load_policy(n) for n in BUILTIN_POLICIES)
    assert default.routing.classifier == "by-kind" and default.routing.thresholds == (0.3,)
    assert default.escalation.checks[-1].name == "answer_checker"
    assert strict.routing.thresholds == (0.8,) and strict.budgets.per_request_usd == 0.02
    assert [c.usd for c in strict.budgets.global_] == [20.0, 300.0]
    assert quality.routing.thresholds == (0.15,) and quality.escalation.on_exhausted == "raise"
    assert quality.routing.thresholds < default.routing.thresholds < strict.routing.thresholds
    assert quality.escalation.checks[-1].name == "min_chars" and quality.escalation.checks[-1].param("n") == 2
    agreement = match.escalation.checks[-1]
    assert agreement.name == "agreement" and agreement.param("with") == "deepseek-coder"
    assert match.catalog["deepseek-coder"].price == match.catalog["deepseek-v2"].price


def test_load_policy_returns_a_policy_as_is():
    policy = load_policy("default")
    assert load_policy(policy) is policy


def test_policy_is_frozen():
    policy = load_policy("default")
    with pytest.raises(pydantic.ValidationError):
        policy.name = "changed"
    with pytest.raises(pydantic.ValidationError):
        policy.routing.thresholds = (0.1,)
    with pytest.raises(pydantic.ValidationError):
        policy.catalog["deepseek-v2"].price.input_per_1m = 0.0
    with pytest.raises(pydantic.ValidationError):
        policy.escalation.ladders["text"][0].model = "gpt-4o"
    assert isinstance(policy.escalation.ladders["text"], tuple)
    assert isinstance(policy.catalog["gpt-4o"].capabilities, frozenset)
    assert hash(policy.routing) == hash(load_policy("default").routing)


def test_policy_dicts_are_immutable_too():
    policy = load_policy("default")
    with pytest.raises((TypeError, pydantic.ValidationError)):
        policy.catalog["rogue"] = policy.catalog["gpt-4o"]
    with pytest.raises((TypeError, pydantic.ValidationError)):
        policy.escalation.ladders["text"] = ()


def test_parse_policy_default_source_name():
    with pytest.raises(ConfigError) as info:
        parse_policy("name: x\n")
    assert "<string>:1: escalation" in str(info.value) or "<string>:1: catalog" in str(info.value)
    assert isinstance(parse_policy(GOOD), Policy)


# ---- plain words, suggestions, every problem in one run ------------------------------------------------------

JARGON = ("Input should be", "valid tuple", "Extra inputs", "Field required", "Value error")


@pytest.mark.parametrize("old, new, field, words", [
    ("thresholds: [0.5]", "thresholds: 0.5", "routing.thresholds",
     "expected a list of numbers between 0 and 1, e.g. [0.5], got the number 0.5"),
    ("capabilities: [text, vision]", "capabilities: text", "catalog.strong.capabilities",
     "expected a list of capability names"),
    ("    - {window: day, usd: 10}", "    {window: day, usd: 10}", "budgets.global", "expected a list of caps"),
    ("      - cheap\n      - strong\n", "      cheap\n", "escalation.ladders.text",
     "expected a list of catalog model names"),
    ("    strength: 10", "    strength: 2.5", "catalog.strong.strength", "expected a whole number, got the number 2.5"),
    ("    context_window: 128000\n    capabilities: [text, vision]",
     "    context_window: [1]\n    capabilities: [text, vision]", "catalog.strong.context_window",
     "expected a whole number, got a list"),
    ("per_request_usd: 0.5", "per_request_usd: lots", "budgets.per_request_usd", "expected a number, got the text 'lots'"),
    ("per_request_usd: 0.5", "per_request_usd: -0.5", "budgets.per_request_usd",
     "must be greater than or equal to 0, got -0.5"),
    ("name: mini", "name: mini\nrouting2: 1", "routing2", "unknown field 'routing2' (did you mean 'routing'?)"),
    ("  store: memory://", "  store: memory://\n  per_usr: []", "budgets.per_usr",
     "unknown field 'per_usr' (did you mean 'per_user'?); fields here: store, per_request_usd, per_user, global"),
    ("  store: memory://", "  store: memory://\n  at_cap: downgrad", "budgets.at_cap",
     "'downgrad' is not one of: downgrade, reject (did you mean 'downgrade'?)"),
    ("      - strong\n", "      - strong\n    visoin: [strong]\n", "escalation.ladders.visoin",
     "key 'visoin' is not one of: text, vision, document (did you mean 'vision'?)"),
    ("      - strong\n", "      - strnog\n", "escalation.ladders.text.1",
     "unknown model 'strnog' (did you mean 'strong'?); catalog has: cheap, strong"),
    ("    price: {input_per_1m: 0.14, output_per_1m: 0.28}", "    price: {input_per_1m: 0.14, output_per1m: 0.28}",
     "catalog.cheap.price.output_per1m", "(did you mean 'output_per_1m'?)"),
    ("  store: memory://", "  store: memory://\n  per_user: [{window: day, usd: 1, scop: x}]", "budgets.per_user.0.scop",
     "unknown field 'scop'; fields here: window, usd"),
], ids=["thresholds-scalar", "capabilities-scalar", "caps-mapping", "ladder-scalar", "int-float", "int-list",
        "float-text", "bound", "top-key", "per_usr", "literal-close", "ladder-key-close", "model-close",
        "price-key", "no-close-key"])
def test_errors_in_plain_words(tmp_path, old, new, field, words):
    assert old in GOOD
    exc = load_error(tmp_path, GOOD.replace(old, new, 1))
    assert any(where.endswith(f": {field}") and words in msg for where, msg in exc.errors), str(exc)
    assert not any(j in str(exc) for j in JARGON), str(exc)


def test_an_unknown_model_is_reported_with_a_schema_error_elsewhere(tmp_path):
    text = (GOOD.replace("thresholds: [0.5]", "thresholds: 0.5").replace("      - strong\n", "      - gpt-5\n")
            .replace("  store: memory://", "  store: memory://\n  per_usr: []"))
    exc = load_error(tmp_path, text)
    fields = [where.rsplit(": ", 1)[-1] for where, _ in exc.errors]
    assert fields == ["routing.thresholds", "budgets.per_usr", "escalation.ladders.text.1"], str(exc)
    assert f"{tmp_path / 'policy.yaml'}:{line_of(text, '- gpt-5')}: escalation.ladders.text.1: unknown model 'gpt-5'" \
        in str(exc)


def test_every_cross_field_problem_is_reported_once(tmp_path):
    text = GOOD.replace("      - cheap\n      - strong\n", "      - chaep\n      - strnog\n").replace(
        "    - non_empty\n", "    - {name: agreement, with: nobody}\n")
    exc = load_error(tmp_path, text)
    messages = [msg for _, msg in exc.errors]
    assert len(messages) == len(set(messages)) == 3, str(exc)
    assert "unknown model 'chaep' (did you mean 'cheap'?)" in messages[0]
    assert "unknown model 'strnog' (did you mean 'strong'?)" in messages[1]
    assert "agreement with unknown model 'nobody'" in messages[2]


def test_policy_errors_never_show_what_an_environment_variable_or_a_pasted_key_held():
    env = {"MY_TOKEN": "tok-4f9a2c7e11d0b3"}
    for text in ("extends: default\nname: x\nbudgets: {at_cap: '${MY_TOKEN}'}\n",
                 "extends: default\nname: x\nescalation: {on_exhausted: sk-live-abcdef123456}\n"):
        with pytest.raises(ConfigError) as info:
            parse_policy(text, source="x.yaml", env=env)
        message = str(info.value) + repr(info.value.errors)
        assert "4f9a2c7e11d0b3" not in message and "abcdef123456" not in message and "***" in message
