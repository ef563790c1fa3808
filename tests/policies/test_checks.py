"""Every built-in answer check, pass and fail (``answer_checker`` is covered with its artifact elsewhere)."""
from __future__ import annotations

import pytest

from policies.checks import (CHECK_FACTORIES, CHECK_NAMES, Answer, CheckOutcome, build_check, resolve_callable,
                             validate_check_params)
from policies.errors import ConfigError
from policies.loader import parse_policy


MC = "Which is a prime?\nOptions:\nA. 4\nB. 7\nC. 9\nD. 12"


def answer(text: str, finish_reason: str | None = "stop", prompt: str = "What is 2+2?") -> Answer:
    return Answer(prompt=prompt, text=text, finish_reason=finish_reason, model="deepseek-v2")


def run(name: str, text: str, params: dict | None = None, **kw) -> CheckOutcome:
    params = params or {}
    validate_check_params(name, params)
    outcome = build_check(name, params)(answer(text, **kw))
    assert isinstance(outcome, CheckOutcome)
    return outcome


def test_registry_names():
    assert CHECK_NAMES == {"non_empty", "not_truncated", "valid_json", "json_schema", "no_refusal", "answer_format", "confidence",
                           "min_chars", "answer_checker", "custom", "agreement"}
    assert set(CHECK_FACTORIES) == CHECK_NAMES


# ---- non_empty --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, passed", [
    ("4", True), ("  The answer is 4.  ", True), ("\u00a0x", True),
    ("", False), ("   ", False), ("\n\t \n", False),
])
def test_non_empty(text, passed):
    outcome = run("non_empty", text)
    assert (outcome.name, outcome.passed) == ("non_empty", passed)
    assert outcome.reason == ("" if passed else "empty answer")


# ---- not_truncated ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("finish_reason, passed", [
    ("stop", True), (None, True), ("tool_calls", True), ("content_filter", True), ("length", False),
])
def test_not_truncated(finish_reason, passed):
    outcome = run("not_truncated", "some answer", finish_reason=finish_reason)
    assert outcome.passed is passed
    assert ("truncated" in outcome.reason) is (not passed)


# ---- valid_json -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"a": 1}', "[1, 2, 3]", '"a string"', "42", "null", '  {"a": [1, {"b": null}]}  \n',
    '```json\n{"a": 1}\n```', '```\n{"a": 1}\n```', '  ```json {"a": 1} ```  ', '```json\n[\n  1,\n  2\n]\n```',
])
def test_valid_json_passes(text):
    outcome = run("valid_json", text)
    assert outcome.passed and outcome.name == "valid_json" and outcome.reason == ""


@pytest.mark.parametrize("text", [
    "", "not json", "{'a': 1}", '{"a": 1,}', '{"a": 1} trailing', '```json\n{"a": \n```',
    'Here it is:\n```json\n{"a": 1}\n```', "```python\nprint(1)\n```",
])
def test_valid_json_fails(text):
    outcome = run("valid_json", text)
    assert not outcome.passed
    assert outcome.reason.startswith("not JSON: ")


def test_valid_json_deeply_nested_answer_is_a_failed_check():
    outcome = build_check("valid_json", {})(answer("[" * 100_000))
    assert outcome.passed is False


# ---- json_schema ------------------------------------------------------------------------------------------

SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}, "why": {"type": "string"}},
          "required": ["answer"], "additionalProperties": False}


@pytest.mark.parametrize("text", [
    '{"answer": 4}', '{"answer": 4, "why": "2+2"}', '```json\n{"answer": 4}\n```',
])
def test_json_schema_passes(text):
    outcome = run("json_schema", text, {"schema": SCHEMA})
    assert outcome.passed and outcome.name == "json_schema"


@pytest.mark.parametrize("text, reason", [
    ('{"answer": "four"}', "schema violation: "),
    ('{"why": "no answer"}', "schema violation: 'answer' is a required property"),
    ('{"answer": 4, "extra": 1}', "schema violation: "),
    ("[4]", "schema violation: "),
    ("four", "not JSON: "),
    ('```json\n{"answer": 4\n```', "not JSON: "),
])
def test_json_schema_fails(text, reason):
    outcome = run("json_schema", text, {"schema": SCHEMA})
    assert not outcome.passed
    assert outcome.reason.startswith(reason)


def test_json_schema_from_a_policy_file():
    policy = parse_policy("extends: default\nname: js\nescalation:\n  checks:\n"
                          "    - name: json_schema\n      schema: {type: object, required: [answer]}\n")
    (spec,) = policy.escalation.checks
    check = build_check(spec.name, dict(spec.params))
    assert check(answer('{"answer": 1}')).passed and not check(answer("{}")).passed


def test_invalid_json_schema_is_rejected_when_the_policy_loads():
    with pytest.raises(ConfigError, match="schema"):
        parse_policy("extends: default\nname: js\nescalation:\n  checks:\n"
                     "    - {name: json_schema, schema: {type: nonsense}}\n")


# ---- no_refusal -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I am sorry, I cannot do that.",
    "Sorry, I won't assist with this request.",
    "I can't help with that.",
    "I cannot assist with that request.",
    "I won't comply.",
    "I am unable to provide that information.",
    "As an AI language model, I cannot browse the internet.",
    "As an AI, I can't do that.",
    "  **I'm sorry**, that is not possible.",
    "i CANNOT HELP with that",
])
def test_no_refusal_detects_refusals(text):
    outcome = run("no_refusal", text)
    assert not outcome.passed and outcome.reason == "answer is a refusal"


@pytest.mark.parametrize("text", [
    "The answer is 4.",
    "Sure! Here is the code you asked for.",
    "You can't divide by zero, so the limit is undefined.",
    "The function cannot help but recurse; add a base case.",
    "",
    "x" * 300 + " I'm sorry, I can't help with that.",    # only the opening of the answer counts
])
def test_no_refusal_passes_answers(text):
    outcome = run("no_refusal", text)
    assert outcome.passed and outcome.reason == ""


@pytest.mark.parametrize("text", ["I'm unable to help with this.", "I'm unable to provide that."])
def test_no_refusal_detects_im_unable_to(text):
    assert not run("no_refusal", text).passed


@pytest.mark.parametrize("text", ["I can\u2019t help with that.", "I\u2019m sorry, but I cannot do that."])
def test_no_refusal_detects_typographic_apostrophes(text):
    assert not run("no_refusal", text).passed


# ---- answer_format ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, text, passed", [
    (r"answer:\s*[A-J]\b", "Reasoning...\nAnswer: C", True),
    (r"answer:\s*[A-J]\b", "reasoning...\nANSWER: c", True),          # case-insensitive
    (r"^final: \d+$", "work\nfinal: 42\nthanks", True),                 # multi-line anchors
    (r"\d{4}-\d{2}-\d{2}", "on 2024-05-01 it rained", True),
    (r"answer:\s*[A-J]\b", "I think it is C", False),
    (r"^final: \d+$", "final: 42 apples", False),
    (r"\d{4}-\d{2}-\d{2}", "", False),
])
def test_answer_format(pattern, text, passed):
    outcome = run("answer_format", text, {"pattern": pattern})
    assert outcome.passed is passed
    if not passed:
        assert outcome.reason == f"no match for /{pattern}/"


# ---- min_chars --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, text, passed", [
    (0, "", True), (1, "x", True), (2, "  ab  ", True), (5, "hello world", True),
    (1, "", False), (3, "  ab \n", False), (20, "short", False),
])
def test_min_chars(n, text, passed):
    outcome = run("min_chars", text, {"n": n})
    assert outcome.passed is passed
    if not passed:
        assert outcome.reason == f"{len(text.strip())} < {n} characters"


# ---- custom -----------------------------------------------------------------------------------------------

def mentions_four(a: Answer) -> bool:
    return "4" in a.text


def polite(a: Answer) -> tuple[bool, str]:
    ok = "please" in a.text.lower()
    return ok, "" if ok else "not polite enough"


def echoes_prompt(a: Answer) -> bool:
    return a.prompt in a.text


def test_custom_bool_callable():
    params = {"callable": f"{__name__}:mentions_four"}
    assert run("custom", "It is 4.", params).passed
    outcome = run("custom", "It is five.", params)
    assert not outcome.passed
    assert outcome.name == f"custom:{__name__}:mentions_four"
    assert outcome.reason == "custom check failed"


def test_custom_tuple_callable_gives_its_reason():
    params = {"callable": f"{__name__}:polite"}
    assert run("custom", "Please find it attached.", params).passed
    outcome = run("custom", "Here.", params)
    assert (outcome.passed, outcome.reason) == (False, "not polite enough")


def test_custom_sees_the_prompt():
    params = {"callable": f"{__name__}:echoes_prompt"}
    assert run("custom", "Q: What is 2+2? A: 4", params).passed
    assert not run("custom", "4", params).passed


def test_custom_from_a_policy_file():
    policy = parse_policy(f"extends: default\nname: c\nescalation:\n  checks:\n"
                          f"    - {{name: custom, callable: '{__name__}:mentions_four'}}\n")
    (spec,) = policy.escalation.checks
    assert spec.name == "custom" and spec.param("callable") == f"{__name__}:mentions_four"
    assert build_check(spec.name, dict(spec.params))(answer("4")).passed


@pytest.mark.parametrize("ref, message", [
    ("nocolon", "must look like"),
    (":fn", "must look like"),
    ("json:", "must look like"),
    ("no_such_module_qq:fn", "cannot import"),
    ("json:no_such_function", "cannot import"),
    ("json:__name__", "is not callable"),
])
def test_resolve_callable_errors(ref, message):
    with pytest.raises(ValueError, match=message):
        resolve_callable(ref)


def test_resolve_callable_imports():
    import json
    assert resolve_callable("json:dumps") is json.dumps
    assert resolve_callable(f"{__name__}:polite") is polite


# ---- parameter validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, params, message", [
    ("non_empty", {"x": 1}, "has no parameter 'x' (allowed: none)"),
    ("min_chars", {}, "needs parameter 'n'"),
    ("min_chars", {"n": True}, "n must be int"),
    ("min_chars", {"n": 2.5}, "n must be int"),
    ("min_chars", {"n": -1}, "n must be >= 0"),
    ("answer_format", {"pattern": "["}, "invalid regex"),
    ("answer_format", {"pattern": 3}, "pattern must be str"),
    ("json_schema", {"schema": []}, "schema must be dict"),
    ("custom", {}, "needs parameter 'callable'"),
    ("custom", {"callable": "json:nope"}, "cannot import"),
])
def test_validate_check_params(name, params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        validate_check_params(name, params)


def test_answer_checker_compares_the_given_scorer_with_its_threshold():
    class Scorer:
        def score_one(self, prompt, text):
            return 0.7 if "bad" in text else 0.1

    check = build_check("answer_checker", {"threshold": 0.5}, scorer=Scorer())
    reasoning = " because".join(["x"] * 25)
    assert check(Answer(prompt=MC, text="good " + reasoning)).passed
    out = check(Answer(prompt=MC, text="bad " + reasoning))
    assert not out.passed and out.score == 0.7 and "0.700 >= 0.5" in out.reason


@pytest.mark.parametrize("prompt, text", [
    (MC, "B"),                                                    # a bare letter: nothing to judge
    # not multiple choice (an answer stating no final number at all is judged: tests/classifiers/test_rules.py)
    ("How many legs do 3 spiders have? Explain.", "bad " + "step " * 40 + "\nSo they have 24 legs."),
    ("Write a Python function that adds two numbers.", "bad\ndef add(a, b):\n    return a + b " + "x " * 30),
])
def test_answer_checker_abstains_where_it_cannot_judge(prompt, text):
    from classifiers.extract import checker_judges

    class Scorer:                  # the shipped checker's domain: multiple-choice answers with reasoning
        judges = staticmethod(checker_judges)

        def score_one(self, prompt, text):
            return 0.99

    out = build_check("answer_checker", {"threshold": 0.5}, scorer=Scorer())(Answer(prompt=prompt, text=text))
    assert out.passed and out.reason.startswith("abstained") and out.score is None
    with pytest.raises(ValueError, match="needs its loaded scorer"):
        build_check("answer_checker", {"threshold": 0.5})


def test_parsing_a_policy_reads_no_artifact():
    """The pure layer reads no file: a policy with answer_checker checks parses without loading one."""
    import subprocess
    import sys
    code = ("import sys; from policies.loader import load_policy; p = load_policy('default'); "
            "print(sorted(m for m in sys.modules if m.startswith('classifiers')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ---- agreement ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, text, second, extract, passed, why", [
    (MC, "Reasoning... The answer is (B).", "so the answer is (B)", "auto", True, ""),
    (MC, "The answer is (B).", "The answer is (C).", "auto", False, "another final answer"),
    (MC, "I think it is prime.", "The answer is (B).", "auto", False, "no choice final answer"),
    ("How many legs do 3 spiders have?", "3 x 8 = 24. #### 24", "The answer is 24.", "auto", True, ""),
    ("How many legs do 3 spiders have?", "#### 24", "#### 23", "number", False, "another final answer"),
    ("Write a Python function that reverses a list.", "def f(x): return x[::-1]", None, "auto", True, "abstained"),
    ("Tell me about Rome.", "Rome is " + "very old " * 30, "Rome " + "is big " * 30, "auto", True, "abstained"),
    (MC, "The answer is (B).", None, "auto", False, "no second opinion"),
    # an output prediction: compared by value, and a side stating no output fails (it does not abstain)
    ("def f(s):\n    return s.upper()\nassert f('ab') == ??", "[ANSWER]\nassert f('ab') == 'AB'\n[/ANSWER]",
     "The output is 'AB'", "auto", True, ""),
    ("def f(s):\n    return s.upper()\nassert f('ab') == ??", "[ANSWER]\nassert f('ab') == 'AB'\n[/ANSWER]",
     "'ab'", "auto", False, "another final answer"),
    ("def f(s):\n    return s.upper()\nassert f('ab') == ??", "[ANSWER]\nassert f('ab') == 'AB'\n[/ANSWER]",
     "Let me think step by step about what upper does to each character of the string " * 3, "auto", False,
     "no output final answer"),
    ('Give JSON', '{"city": "Paris", "n": 1}', '```json\n{"n": 2, "city": "Paris"}\n```', "json:city", True, ""),
])
def test_agreement(prompt, text, second, extract, passed, why):
    params = {"with": "deepseek-coder", "extract": extract}
    validate_check_params("agreement", params)
    out = build_check("agreement", params)(Answer(prompt=prompt, text=text, second=second))
    assert (out.name, out.passed) == ("agreement", passed), out
    assert why in out.reason


@pytest.mark.parametrize("params, message", [
    ({}, "needs parameter 'with'"),
    ({"with": "m", "extract": "letters"}, "extract 'letters' is not one of"),
    ({"with": "m", "parallel": "yes"}, "parallel must be bool"),
])
def test_agreement_params_are_validated(params, message):
    with pytest.raises(ValueError, match=message):
        validate_check_params("agreement", params)


@pytest.mark.parametrize("snippet, message", [
    ("checks: [{name: agreement, with: nobody}]", "agreement with unknown model 'nobody'"),
    ("checks: [{name: agreement, with: gpt-4o}, {name: agreement, with: deepseek-coder, extract: number}]",
     "at most one agreement check per rung"),
])
def test_agreement_in_a_policy_names_a_catalog_model(snippet, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(f"extends: default\nname: x\nescalation:\n  {snippet}\n", source="x.yaml")


def test_the_shipped_checker_judges_multiple_choice_reasoning_only():
    from classifiers import load_answer_checker
    judges = load_answer_checker("default").judges
    assert judges(MC, "Seven has no divisor but one and itself, " + "so it is prime " * 5 + "the answer is (B).")
    spiders = "How many legs do 3 spiders have?"
    assert not judges(MC, "B") and not judges(spiders, "Each spider has 8 legs. " * 8 + "So 3 spiders have 24 legs.")
    assert judges(spiders, "Each spider has 8 legs. " * 8 + "Let me count them all")   # no final number: rules speak
    assert judges(MC, "Seven")            # short, but no stated letter: the checker's rules score it 1.0
    assert getattr(load_answer_checker("rules"), "judges", None) is None      # the rule checker judges every answer
