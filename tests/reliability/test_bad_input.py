"""Bad input never crashes: policies either load or raise ``ConfigError``; requests are either answered
or refused with ``InvalidRequestError`` naming the place — never a bare exception, and a refused request
leaves no ledger entry and no reservation.

Property tests (hypothesis) generate the input; the inputs that reach a known defect are pinned below as
``xfail(strict=True)`` tests (one per defect, named ``BUG: ...``), and the strategies leave those triggers
out so that the properties keep guarding everything else until the defects are fixed.
"""
from __future__ import annotations

import asyncio
import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cascade.router import Router
from cascade.trace import read_traces
from policies.errors import CascadeError, ConfigError, InvalidRequestError
from policies.loader import builtin_policy_path, load_policy, parse_policy
from policies.schema import Policy
from tests.cascade.router.conftest import FixedScore, Sleeps, provider_env
from tests.harness.fake_provider import answer

DEFAULT_YAML = builtin_policy_path("default").read_text(encoding="utf-8")
DEFAULT_DATA = yaml.safe_load(DEFAULT_YAML)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def yaml_printable(text: str) -> bool:
    """No character that PyYAML's reader refuses (control characters): those are pinned in an xfail test."""
    return not yaml.reader.Reader.NON_PRINTABLE.search(text)


def assert_policy_or_config_error(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        result = fn(*args, **kwargs)
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError without a message"
        return
    except Exception as exc:  # noqa: BLE001 - the defect this file looks for
        pytest.fail(f"untyped exception {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}", pytrace=False)
    assert isinstance(result, Policy)


# ── strategies: YAML ────────────────────────────────────────────────────────────────────────

LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
texts = st.text(max_size=40) | LONE_SURROGATES | st.sampled_from(["", " ", "${UNSET_VAR_XYZ}", "${HOME}", "\x00",
                                                                  "x" * 100_000, "é" * 1000, "\u202e", "~"])
numbers = (st.integers(min_value=-(2 ** 80), max_value=2 ** 80) | st.floats()
           | st.sampled_from([0, -1, 10 ** 30, -0.0, 1e-320, math.inf, -math.inf, math.nan]))
scalars = st.none() | st.booleans() | numbers | texts
yaml_data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=12) | st.integers() | st.none(), inner, max_size=4),
                         max_leaves=25)
# string keys only where the data can land inside a check spec (mixed key types there: pinned in an xfail test)
yaml_data_str_keys = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                                  | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=25)
BAD_REGEXES = ["(", "[a-", "*", "(?P<x>a)(?P<x>b)", "\\", "a{2,1}", "(?<=a+)b", "\\p{L}", "(" * 200]
CHECK_SPECS = st.one_of(
    st.sampled_from(["non_empty", "not_truncated", "valid_json", "no_refusal", "nonexistent_check", "", "min_chars"]),
    st.fixed_dictionaries({"name": st.just("answer_format"), "pattern": st.sampled_from(BAD_REGEXES) | texts | scalars}),
    st.fixed_dictionaries({"name": st.just("min_chars"), "n": scalars}),
    st.fixed_dictionaries({"name": st.just("answer_checker"), "threshold": scalars}),
    st.fixed_dictionaries({"name": st.just("json_schema"),
                           "schema": st.dictionaries(st.sampled_from(["type", "properties", "required", "minimum"]),
                                                     scalars, max_size=3) | scalars}),
    # module names are safe ones: importing a random module name could run its import side effects
    st.fixed_dictionaries({"name": st.just("custom"),
                           "callable": st.sampled_from(["json:dumps", "os.path:join", "json:nope", "zz_no_such_mod:f",
                                                        "json", ":", "json:", ":f", "math:pi"]) | scalars.filter(
                               lambda v: not isinstance(v, str))}),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
    scalars,
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, prefix + (i,))
    return out


DEFAULT_PATHS = _paths(DEFAULT_DATA)[1:]


@st.composite
def mutated_policies(draw: Any) -> Any:
    """The default policy (or a small ``extends: default`` override) with 1-4 random mutations."""
    if draw(st.booleans()):
        data = copy.deepcopy(DEFAULT_DATA)
    else:
        data = {"extends": "default", "name": "override",
                **{k: copy.deepcopy(DEFAULT_DATA[k]) for k in draw(st.sets(st.sampled_from(
                    ["routing", "escalation", "retries", "budgets", "catalog"]), max_size=2))}}
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)[1:] or [()]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "junk", "data", "unknown_key", "number", "checks", "huge", "type"]))
        if not path:
            break
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "junk":
            parent[key] = draw(scalars)
        elif op == "data":
            parent[key] = draw(yaml_data_str_keys)
        elif op == "unknown_key":
            target = parent[key] if isinstance(parent[key], dict) else parent
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=10))] = draw(scalars)
        elif op == "number":
            parent[key] = draw(numbers)
        elif op == "checks":
            data.setdefault("escalation", {})
            if isinstance(data["escalation"], dict):
                data["escalation"]["checks"] = draw(st.lists(CHECK_SPECS, max_size=3))
        elif op == "huge":
            parent[key] = "y" * draw(st.sampled_from([10_000, 100_000]))
        elif op == "type":
            value = parent[key]
            parent[key] = [value] if not isinstance(value, list) else {"k": value}
        if op != "delete" and isinstance(parent, dict) and draw(st.booleans()):
            parent[draw(st.sampled_from(["extra", "catalog", "budgets"]))] = draw(scalars)
    if isinstance(data.get("extends"), str) and len(data["extends"]) > 200:
        data["extends"] = data["extends"][:200]     # overlong names: pinned in an xfail test
    return data


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10 ** 9)


# ── properties: policies ────────────────────────────────────────────────────────────────────

@SETTINGS
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_random_text_is_a_policy_or_a_config_error(text):
    assume(yaml_printable(text))
    assert_policy_or_config_error(parse_policy, text, source="fuzz.yaml")


@SETTINGS
@given(data=yaml_data)
def test_random_yaml_data_is_a_policy_or_a_config_error(data):
    assume(not (isinstance(data, dict) and isinstance(data.get("extends"), str) and len(data["extends"]) > 200))
    assert_policy_or_config_error(parse_policy, dump(data), source="fuzz.yaml")


@settings(SETTINGS, max_examples=300)
@given(data=mutated_policies())
def test_mutated_default_policy_is_a_policy_or_a_config_error(data):
    assert_policy_or_config_error(parse_policy, dump(data), source="mutated.yaml")


@SETTINGS
@given(cuts=st.lists(st.tuples(st.integers(0, len(DEFAULT_YAML)), st.binary(min_size=1, max_size=4)), min_size=1,
                     max_size=4))
def test_non_utf8_bytes_in_the_file_are_a_config_error(tmp_path_factory, cuts):
    raw = bytearray(DEFAULT_YAML.encode("utf-8"))
    for at, junk in sorted(cuts, reverse=True):
        raw[at:at] = junk
    try:
        assume(yaml_printable(bytes(raw).decode("utf-8")))
    except UnicodeDecodeError:
        pass
    path = tmp_path_factory.mktemp("bytes") / "policy.yaml"
    path.write_bytes(bytes(raw))
    assert_policy_or_config_error(load_policy, str(path))


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00n\x00a", b"name: \xc3\x28\n", b"name: x\r\n\x85",
                                 "name: caf\u00e9".encode("utf-16"), b"\xef\xbb\xbfname: bom\n"])
def test_odd_encodings_are_a_config_error(tmp_path, raw):
    path = tmp_path / "p.yaml"
    path.write_bytes(raw)
    assert_policy_or_config_error(load_policy, str(path))


@pytest.mark.parametrize("pattern", BAD_REGEXES)
def test_bad_regex_is_a_config_error_naming_the_check(pattern):
    text = dump({"extends": "default", "name": "x", "escalation": {"checks": [{"name": "answer_format", "pattern": pattern}]}})
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="re.yaml")
    assert "escalation.checks.0" in str(info.value) and "re.yaml:" in str(info.value)


# ── pinned defects: policies ────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("text", ["\x1f", "name: x\x00\n", "name: a\x7fb\n", "name: \x80\n"])
def test_control_characters_are_a_config_error(tmp_path, text):
    assert_policy_or_config_error(parse_policy, text, source="ctl.yaml")
    path = tmp_path / "ctl.yaml"
    path.write_text(text, encoding="utf-8")
    assert_policy_or_config_error(load_policy, str(path))


@pytest.mark.parametrize("check", ["{'': null, null: null}", "{name: min_chars, n: 3, null: 1}", "{name: x, 1: 2, a: 3}"])
def test_check_with_mixed_key_types_is_a_config_error(check):
    assert_policy_or_config_error(parse_policy, f"extends: default\nname: x\nescalation:\n  checks: [{check}]\n",
                                  source="mixed.yaml")


@pytest.mark.parametrize("ref", [".foo:bar", "..:f"])
def test_custom_check_with_a_relative_module_is_a_config_error(ref):
    text = dump({"extends": "default", "name": "x", "escalation": {"checks": [{"name": "custom", "callable": ref}]}})
    assert_policy_or_config_error(parse_policy, text, source="custom.yaml")


@pytest.mark.parametrize("dollar_schema", [[], 5, {"a": 1}])
def test_json_schema_with_a_non_string_dollar_schema_is_a_config_error(dollar_schema):
    text = dump({"extends": "default", "name": "x",
                 "escalation": {"checks": [{"name": "json_schema", "schema": {"$schema": dollar_schema}}]}})
    assert_policy_or_config_error(parse_policy, text, source="schema.yaml")


@pytest.mark.parametrize("where", ["extends", "load_policy"])
def test_overlong_policy_name_is_a_config_error(where):
    name = "p" * 5000
    if where == "extends":
        assert_policy_or_config_error(parse_policy, f"extends: {name}\nname: x\n", source="long.yaml")
    else:
        assert_policy_or_config_error(load_policy, name)


# ── requests ────────────────────────────────────────────────────────────────────────────────

PLACE = re.compile(r"messages|max_tokens|max_completion_tokens|user|params|policy|characters")
ROLES = ["system", "user", "assistant", "tool", "developer", "function"]
req_text = st.text(max_size=60) | LONE_SURROGATES.map(lambda s: "hi " + s) | st.sampled_from(
    ["", "word " * 30_000, "\x00\x01", "\u202e\u0301", "🙂" * 50])
json_junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                         max_leaves=6)
any_junk = json_junk | st.binary(max_size=8) | st.builds(object) | st.frozensets(st.integers(), max_size=2)
urls = st.sampled_from(["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo=", "data:application/pdf;base64,JVBERi0=",
                        "", "not a url"]) | st.text(max_size=10)
parts = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "input_text"])}, optional={"text": req_text | any_junk}),
    st.fixed_dictionaries({"type": st.sampled_from(["image_url", "input_image"])},
                          optional={"image_url": urls | st.fixed_dictionaries({}, optional={"url": urls | any_junk})
                                    | any_junk}),
    st.fixed_dictionaries({"type": st.sampled_from(["file", "input_file"])},
                          optional={"file": st.fixed_dictionaries({"file_data": urls})}),
    st.fixed_dictionaries({"type": st.sampled_from(["audio", "video", "", "TEXT"]) | any_junk}),
    any_junk,
)
contents = st.none() | req_text | st.lists(parts, max_size=3) | any_junk
messages_one = st.one_of(
    # extra fields hold JSON values only: unserialisable ones are pinned in an xfail test
    st.fixed_dictionaries({}, optional={"role": st.sampled_from(ROLES) | any_junk, "content": contents,
                                        "name": st.text(max_size=8)}),
    any_junk,
)
messages_strategy = st.lists(messages_one, max_size=4) | any_junk | st.lists(
    st.fixed_dictionaries({"role": st.just("user"), "content": req_text}), min_size=1, max_size=3)
int_junk = (st.none() | st.integers(min_value=-3, max_value=3) | st.integers(min_value=2 ** 31) | st.booleans()
            | st.floats() | st.text(max_size=3) | st.just(10 ** 30))
params_strategy = st.fixed_dictionaries({}, optional={"max_tokens": int_junk, "max_completion_tokens": int_junk})
users = st.none() | st.text(max_size=20) | st.integers() | st.lists(st.text(max_size=2), max_size=2) | st.binary(max_size=4)


def _check_refusal(exc: BaseException) -> None:
    assert isinstance(exc, InvalidRequestError), f"not an InvalidRequestError: {type(exc).__name__}: {exc}"
    assert isinstance(exc, ValueError)
    assert PLACE.search(str(exc)), f"the message does not name the place: {exc}"


@pytest.fixture
def text_only_policy() -> Policy:
    data = copy.deepcopy(DEFAULT_DATA)
    data["escalation"]["ladders"] = {"text": ["deepseek-v2", "gpt-4o"]}
    data["name"] = "text-only"
    return parse_policy(dump(data), source="text-only.yaml")


@pytest.fixture
def bad_input_router(fake_provider, tmp_path):
    """``make(policy)``: one Router per policy for the whole test (hypothesis runs many examples through it),
    on a SQLite ledger, pointed at the local provider; no reservation may be left open afterwards."""
    fake_provider.script("*", answer())
    routers: dict[str, Router] = {}

    def make(policy: Any = "default") -> Router:
        key = policy if isinstance(policy, str) else policy.name
        if key not in routers:
            routers[key] = Router(policy, budget_store=f"sqlite:///{tmp_path}/spend-{len(routers)}.db",
                                  env=provider_env(fake_provider.url), sleep=Sleeps(), classifier="heuristic",
                                  user_cap_usd=50.0, global_cap_usd=500.0)
        return routers[key]
    yield make
    for router in routers.values():
        assert router.store.open_reservations() == 0
        router.close()


@SETTINGS
@given(messages=messages_strategy, params=params_strategy, user=users, text_only=st.booleans())
def test_route_answers_or_names_the_problem(bad_input_router, text_only_policy, messages, params, user, text_only):
    router = bad_input_router(text_only_policy if text_only else "default")
    try:
        routed = router.route(messages, user=user, **params)
    except CascadeError as exc:
        _check_refusal(exc)
        return
    assert routed.plan.attempts or routed.refused is not None     # a dry run returns a budget refusal


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    pending = asyncio.all_tasks(loop)        # litellm's logging worker
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


@settings(SETTINGS, max_examples=150)
@given(messages=messages_strategy, params=params_strategy, user=users)
def test_acomplete_answers_or_refuses_without_touching_the_budget(bad_input_router, fake_provider, loop,
                                                                 messages, params, user):
    router = bad_input_router()
    before = len(router.store.ledger())
    calls_before = fake_provider.tally.n_requests
    try:
        resp = loop.run_until_complete(router.acomplete(messages, user=user, **params))
    except CascadeError as exc:
        _check_refusal(exc)
        assert len(router.store.ledger()) == before, "a refused request left a ledger entry"
        assert fake_provider.tally.n_requests == calls_before, "a refused request reached the provider"
    else:
        assert resp.cascade.outcome in ("ok", "best_answer")
        assert len(router.store.ledger()) > before
    assert router.store.open_reservations() == 0


async def test_too_much_text_is_refused_before_any_call(bad_input_router, fake_provider):
    router = bad_input_router()
    with pytest.raises(InvalidRequestError, match="characters"):
        await router.acomplete([{"role": "user", "content": "x" * 20_000_001}])
    assert fake_provider.tally.n_requests == 0 and router.store.ledger() == []


async def test_images_where_the_policy_has_no_vision_ladder(bad_input_router, text_only_policy, fake_provider):
    router = bad_input_router(text_only_policy)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(InvalidRequestError, match="vision"):
        await router.acomplete([{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])
    assert fake_provider.tally.n_requests == 0 and router.store.ledger() == []


# ── pinned defects: requests and runtime ────────────────────────────────────────────────────

async def typed_outcome(awaitable: Any) -> Any:
    """The response, or the CascadeError raised; any other exception fails the test (without its traceback)."""
    try:
        return await awaitable
    except CascadeError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the defect this file looks for
        pytest.fail(f"untyped exception {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}", pytrace=False)


async def test_unserialisable_message_field_is_an_invalid_request_and_harms_no_one(bad_input_router, fake_provider):
    router = bad_input_router()
    for _ in range(2):
        got = await typed_outcome(router.acomplete([{"role": "user", "content": "hi", "name": {1, 2}}]))
        assert isinstance(got, InvalidRequestError), f"{type(got).__name__}: {str(got)[:200]}"
    got = await typed_outcome(router.acomplete([{"role": "user", "content": "a valid request"}]))
    assert not isinstance(got, CascadeError), f"a valid request was refused: {type(got).__name__}: {str(got)[:200]}"


async def test_user_with_a_lone_surrogate_is_an_invalid_request(bad_input_router, fake_provider):
    router = bad_input_router()
    got = await typed_outcome(router.acomplete([{"role": "user", "content": "hi"}], user="bad\ud800user"))
    assert isinstance(got, InvalidRequestError) and "user" in str(got)
    assert router.store.ledger() == []


@pytest.mark.parametrize("where", ["user", "answer"])
async def test_trace_write_never_loses_a_paid_answer(fake_provider, tmp_path, where):
    fake_provider.script("*", answer("broken \ud83d emoji" if where == "answer" else None))
    router = Router("default", budget_store="memory://", env=provider_env(fake_provider.url), sleep=Sleeps(),
                    classifier=FixedScore(0.1), trace_path=tmp_path / "t.jsonl", trace_text=True)
    user = "bad\ud800user" if where == "user" else "alice"
    try:
        got = await typed_outcome(router.acomplete([{"role": "user", "content": "hi"}], user=user))
        if isinstance(got, CascadeError):
            assert isinstance(got, InvalidRequestError) and router.store.ledger() == []   # refused up front: fine
        else:
            assert len(read_traces(tmp_path / "t.jsonl")) == 1
    finally:
        router.close()


def _router_for(policy_text: str, fake_provider: Any, **kw: Any) -> Router:
    fake_provider.script("*", answer('{"a": 1}'))
    return Router(parse_policy("extends: default\nname: x\n" + policy_text, source="p.yaml"), budget_store="memory://",
                  env=provider_env(fake_provider.url), sleep=Sleeps(), classifier=FixedScore(0.1), **kw)


async def _answer_or_typed(router: Router) -> None:
    try:
        await router.acomplete([{"role": "user", "content": "hi"}])
    except CascadeError:
        pass
    except Exception as exc:  # noqa: BLE001 - the defect: reported without its (deep) traceback
        pytest.fail(f"untyped exception {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}", pytrace=False)
    finally:
        router.close()


async def test_a_custom_check_that_raises_is_a_failed_check(fake_provider):
    router = _router_for("escalation: {checks: [{name: custom, callable: 'json:loads'}]}", fake_provider)
    await _answer_or_typed(router)


@pytest.mark.parametrize("ref", ["#/nope", "http://127.0.0.1:9/schema.json"])
async def test_json_schema_with_an_unresolvable_ref(fake_provider, ref):
    router = _router_for(f"escalation: {{checks: [{{name: json_schema, schema: {{'$ref': '{ref}'}}}}]}}", fake_provider)
    await _answer_or_typed(router)


async def test_an_infinite_cap_in_the_policy(fake_provider):
    try:
        router = _router_for("budgets: {global: [{window: day, usd: .inf}]}", fake_provider)
    except ConfigError:
        return
    await _answer_or_typed(router)


@pytest.mark.parametrize("cap", [math.inf, math.nan])
def test_a_non_finite_cap_argument_is_a_config_error(fake_provider, cap):
    with pytest.raises(ConfigError):
        Router("default", budget_store="memory://", env=provider_env(fake_provider.url), global_cap_usd=cap,
               classifier=FixedScore(0.1))


async def test_a_policy_that_loads_serves_requests(fake_provider):
    try:
        router = _router_for("budgets: {reservation_ttl_s: .inf}", fake_provider)
    except ConfigError:
        return
    try:
        resp = await router.acomplete([{"role": "user", "content": "hi"}])
        assert resp.cascade.outcome == "ok"
    finally:
        router.close()
