"""Answer checks: small callables over one ``Answer`` that say pass or fail and why.

A failed check is a value (``CheckOutcome(passed=False, ...)``), never an exception. YAML names map to
factories through the explicit ``CHECK_FACTORIES`` registry; nothing registers itself on import.

    non_empty                      the answer has visible text
    not_truncated                  finish_reason is not "length"
    valid_json                     the answer parses as JSON (code fences allowed)
    json_schema   {schema: {...}}  the JSON answer validates against the schema
    no_refusal                     the answer is not a refusal ("I can't help with that")
    answer_format {pattern: RE}    the regex is found in the answer
    min_chars     {n: 20}          at least n non-blank characters
    answer_checker {threshold: 0.5, artifact: default}
                                   the trained checker's P(inadequate) is below the threshold
    confidence {min_mean_logprob: -1.0, min_logprob: -8.0, min_margin: 1.0}
                                   the cheap model's own token logprobs clear every threshold given
                                   (abstains when the provider returned none)
    agreement {with: ALIAS, extract: auto, parallel: false}
                                   a second model (catalog alias) gives the same final answer
                                   (extract: auto | choice | number | text | json | json:<field>;
                                   auto abstains on a code request and on free text too long to
                                   compare; a side with no final choice, number or code output fails)
    custom        {callable: "pkg.mod:fn"}  fn(answer) -> bool | (bool, reason)
"""
from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

_REFUSAL = re.compile(
    r"^\W*(?:i['’]?m sorry|i am sorry|sorry,|i(?: |['’])(?:can['’]?t|cannot|can not|won['’]?t|am unable to|"
    r"m unable to|m not able to|am not able to) (?:help|assist|comply|provide|do that|answer)"
    r"|as an ai(?: language model)?,? i (?:can['’]?t|cannot))",
    re.IGNORECASE)
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    """What a check sees: the prompt text, the answer text and how generation ended."""

    prompt: str
    text: str
    finish_reason: str | None = None
    model: str | None = None
    second: str | None = None          # the second opinion's answer (agreement checks), None: none came
    confidence: Any = None             # classifiers.confidence.Confidence of the answer, None: no logprobs


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    reason: str = ""
    score: float | None = None


Check = Callable[[Answer], CheckOutcome]


def _non_empty(_: dict) -> Check:
    return lambda a: CheckOutcome("non_empty", bool(a.text.strip()), "" if a.text.strip() else "empty answer")


def _not_truncated(_: dict) -> Check:
    def check(a: Answer) -> CheckOutcome:
        cut = a.finish_reason == "length"
        return CheckOutcome("not_truncated", not cut, "finish_reason=length (truncated)" if cut else "")
    return check


def _parse_json(text: str) -> Any:
    m = _FENCE.match(text)
    return json.loads(m.group(1) if m else text)


def _valid_json(_: dict) -> Check:
    def check(a: Answer) -> CheckOutcome:
        try:
            _parse_json(a.text)
        except (ValueError, RecursionError) as exc:
            return CheckOutcome("valid_json", False, f"not JSON: {str(exc)[:80]}")
        return CheckOutcome("valid_json", True)
    return check


def _json_schema(params: dict) -> Check:
    import jsonschema  # lazy: only policies that use the check pay for it
    validator = jsonschema.validators.validator_for(params["schema"])(params["schema"])

    def check(a: Answer) -> CheckOutcome:
        try:
            validator.validate(_parse_json(a.text))
        except (ValueError, RecursionError) as exc:
            return CheckOutcome("json_schema", False, f"not JSON: {str(exc)[:80]}")
        except jsonschema.ValidationError as exc:
            return CheckOutcome("json_schema", False, f"schema violation: {exc.message[:120]}")
        return CheckOutcome("json_schema", True)
    return check


def _no_refusal(_: dict) -> Check:
    def check(a: Answer) -> CheckOutcome:
        refused = bool(_REFUSAL.search(a.text[:200]))
        return CheckOutcome("no_refusal", not refused, "answer is a refusal" if refused else "")
    return check


def _answer_format(params: dict) -> Check:
    pattern = re.compile(params["pattern"], re.IGNORECASE | re.MULTILINE)

    def check(a: Answer) -> CheckOutcome:
        ok = pattern.search(a.text) is not None
        return CheckOutcome("answer_format", ok, "" if ok else f"no match for /{pattern.pattern}/")
    return check


def _min_chars(params: dict) -> Check:
    n = int(params["n"])

    def check(a: Answer) -> CheckOutcome:
        got = sum(1 for ch in a.text if not ch.isspace())
        return CheckOutcome("min_chars", got >= n, "" if got >= n else f"{got} < {n} characters")
    return check


def _answer_checker(params: dict, scorer: Any = None) -> Check:
    threshold = float(params.get("threshold", 0.5))
    if scorer is None:
        raise ValueError(f"check 'answer_checker' (artifact {params.get('artifact', 'default')!r}) needs its loaded "
                         f"scorer: build_check(..., scorer=load_answer_checker(artifact))")

    judges = getattr(scorer, "judges", None)          # the answers the scorer can judge (None: all)

    def check(a: Answer) -> CheckOutcome:
        if judges is not None and not judges(a.prompt, a.text):
            return CheckOutcome("answer_checker", True, CHECKER_ABSTAINS)
        p = float(scorer.score_one(a.prompt, a.text))
        ok = p < threshold
        return CheckOutcome("answer_checker", ok, "" if ok else f"P(inadequate)={p:.3f} >= {threshold}", p)
    return check


CHECKER_ABSTAINS = "abstained: not a multiple-choice answer with reasoning (the checker cannot judge it)"
_KIND = re.compile(r"^(?:auto|choice|number|text|json(?::\S+)?)$")


def consults(spec: Any, prompt: str) -> bool:
    """Whether an agreement check calls its second model for this prompt: not when ``extract: auto``
    meets a code request (two programs are not compared by their final answer: the check abstains)."""
    if spec.name != "agreement":
        return False
    if str(spec.param("extract", "auto")) != "auto":
        return True
    from classifiers.extract import prompt_kind   # pure functions, no I/O
    return prompt_kind(prompt) != "code"


def _agreement(params: dict) -> Check:
    kind, other = str(params.get("extract", "auto")), str(params["with"])

    def check(a: Answer) -> CheckOutcome:
        from classifiers.extract import agree, answer_kind, prompt_kind
        from classifiers.extract_output import is_output_request
        if kind == "auto" and prompt_kind(a.prompt) == "code":
            return CheckOutcome("agreement", True, "abstained: a code request (no final answer to compare)")
        if a.second is None:
            return CheckOutcome("agreement", False, f"no second opinion from {other} (its call did not answer)")
        verdict = agree(a.text, a.second, kind, a.prompt)
        resolved = answer_kind(a.prompt) if kind == "auto" else kind
        output = resolved == "text" and kind == "auto" and is_output_request(a.prompt)
        if verdict is None and resolved == "text" and not output:
            return CheckOutcome("agreement", True, "abstained: free text too long to compare")
        if verdict is None:     # an output prediction is a value: one that states none is no answer
            what = "output" if output else resolved
            return CheckOutcome("agreement", False, f"no {what} final answer to compare with {other}'s")
        return CheckOutcome("agreement", verdict, "" if verdict else f"{other} gives another final answer")
    return check


CONFIDENCE_ABSTAINS = "abstained: the provider returned no token logprobs"
_CONFIDENCE_LIMITS = (("min_mean_logprob", "mean_logprob", "mean token logprob"),
                      ("min_logprob", "min_logprob", "lowest token logprob"),
                      ("min_margin", "answer_margin", "final answer's top-1 minus top-2 logprob"))


def _confidence(params: dict) -> Check:
    limits = [(float(params[key]), attr, what) for key, attr, what in _CONFIDENCE_LIMITS if key in params]

    def check(a: Answer) -> CheckOutcome:
        conf = a.confidence
        if conf is None:
            return CheckOutcome("confidence", True, CONFIDENCE_ABSTAINS)
        low = [f"{what} {value:.3f} < {limit}" for limit, attr, what in limits
               if (value := getattr(conf, attr)) is not None and value < limit]
        return CheckOutcome("confidence", not low, "; ".join(low), conf.mean_logprob)
    return check


def _custom(params: dict) -> Check:
    fn = resolve_callable(params["callable"])

    def check(a: Answer) -> CheckOutcome:
        result = fn(a)
        ok, reason = result if isinstance(result, tuple) else (bool(result), "")
        return CheckOutcome(f"custom:{params['callable']}", bool(ok), "" if ok else (reason or "custom check failed"))
    return check


def resolve_callable(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``; ValueError with the reason when it cannot be used."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"callable {ref!r} must look like 'package.module:function'")
    if module_name.startswith("."):
        raise ValueError(f"callable {ref!r}: use an absolute module path, not a relative one")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # noqa: BLE001 - any import-time failure of user code is a config error
        raise ValueError(f"cannot import callable {ref!r}: {type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"{ref!r} is not callable")
    return fn


# name -> (factory, {param: (type(s), required)})
CHECK_FACTORIES: dict[str, tuple[Callable[[dict], Check], dict[str, tuple[tuple[type, ...], bool]]]] = {
    "non_empty": (_non_empty, {}),
    "not_truncated": (_not_truncated, {}),
    "valid_json": (_valid_json, {}),
    "json_schema": (_json_schema, {"schema": ((dict,), True)}),
    "no_refusal": (_no_refusal, {}),
    "answer_format": (_answer_format, {"pattern": ((str,), True)}),
    "min_chars": (_min_chars, {"n": ((int,), True)}),
    "answer_checker": (_answer_checker, {"threshold": ((int, float), False), "artifact": ((str,), False)}),  # + scorer
    "custom": (_custom, {"callable": ((str,), True)}),
    "confidence": (_confidence, {"min_mean_logprob": ((int, float), False), "min_logprob": ((int, float), False),
                                 "min_margin": ((int, float), False)}),
    "agreement": (_agreement, {"with": ((str,), True), "extract": ((str,), False), "parallel": ((bool,), False)}),
}
CHECK_NAMES = frozenset(CHECK_FACTORIES)


def validate_check_params(name: str, params: dict) -> None:
    """Raise ValueError naming the bad parameter; resolves regexes and custom callables eagerly."""
    _, spec = CHECK_FACTORIES[name]
    for key in params:
        if key not in spec:
            allowed = ", ".join(spec) or "none"
            raise ValueError(f"check {name!r} has no parameter {key!r} (allowed: {allowed})")
    for key, (types, required) in spec.items():
        if key not in params:
            if required:
                raise ValueError(f"check {name!r} needs parameter {key!r}")
            continue
        value = params[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ValueError(f"check {name!r}: {key} must be {'/'.join(t.__name__ for t in types)}, got {value!r}")
    if name == "answer_checker" and not 0.0 <= float(params.get("threshold", 0.5)) <= 1.0:
        raise ValueError(f"check 'answer_checker': threshold {params['threshold']} is outside [0, 1]")
    if name == "confidence" and not params:
        raise ValueError("check 'confidence' needs at least one of min_mean_logprob, min_logprob, min_margin")
    if name == "min_chars" and params["n"] < 0:
        raise ValueError("check 'min_chars': n must be >= 0")
    if name == "answer_format":
        try:
            re.compile(params["pattern"])
        except re.error as exc:
            raise ValueError(f"check 'answer_format': invalid regex {params['pattern']!r}: {exc}") from None
    if name == "custom":
        resolve_callable(params["callable"])
    if name == "agreement" and not _KIND.match(str(params.get("extract", "auto"))):
        raise ValueError(f"check 'agreement': extract {params['extract']!r} is not one of auto, choice, number, "
                         f"text, json, json:<field>")
    if name == "json_schema":
        import jsonschema
        try:
            jsonschema.validators.validator_for(params["schema"]).check_schema(params["schema"])
        except jsonschema.SchemaError as exc:
            raise ValueError(f"check 'json_schema': invalid JSON Schema: {exc.message}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. a non-string $schema
            raise ValueError(f"check 'json_schema': invalid JSON Schema: {type(exc).__name__}: {exc}") from None


def build_check(name: str, params: dict, *, scorer: Any = None) -> Check:
    """The check's callable, guarded: a check that raises (user code, an unresolvable ``$ref``) is a
    failed check with the error as its reason, never an exception after the answer was paid for.
    ``scorer``: the loaded answer checker an ``answer_checker`` check compares with its threshold (the
    runtime loads it; this layer reads no file)."""
    factory, _ = CHECK_FACTORIES[name]
    check = _answer_checker(params, scorer) if name == "answer_checker" else factory(params)

    def guarded(answer: Answer) -> CheckOutcome:
        try:
            return check(answer)
        except Exception as exc:  # noqa: BLE001
            return CheckOutcome(name, False, f"check raised {type(exc).__name__}: {str(exc)[:120]}")
    return guarded
