"""Policy errors in plain words: pydantic's errors said as what the field expects (``a list of numbers
between 0 and 1, e.g. [0.5]``, not ``Input should be a valid tuple``), with ``did you mean 'per_user'?``
for a key close to a known one; and the cross-field problems of raw YAML data, so that an unknown model
in a ladder is reported in the same run as a schema error elsewhere in the file."""
from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from policies.schema import MODALITY_CAPABILITY, Policy, RoutingConfig, did_you_mean, reference_problems

Path_ = tuple[str | int, ...]

# What a list-valued field holds, by its name (or "ladder" for escalation.ladders.<modality>).
_LIST_HINTS = {
    "thresholds": "a list of numbers between 0 and 1, e.g. [0.5]",
    "capabilities": "a list of capability names, e.g. [text, json_mode]",
    "per_user": "a list of caps, e.g. [{window: day, usd: 1.0}]",
    "per_team": "a list of caps, e.g. [{window: day, usd: 5.0}]",
    "per_org": "a list of caps, e.g. [{window: month, usd: 100.0}]",
    "per_key": "a list of caps, e.g. [{window: day, usd: 1.0}]",
    "global": "a list of caps, e.g. [{window: day, usd: 20.0}]",
    "checks": "a list of check names or {name: ..., param: ...} mappings, e.g. [non_empty, not_truncated]",
    "ladder": "a list of catalog model names, cheapest first, e.g. [deepseek-v2, gpt-4o]",
}
_KINDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "text",
    "dict_type": "a mapping (indented `key: value` lines)", "model_type": "a mapping (indented `key: value` lines)",
    "model_attributes_type": "a mapping (indented `key: value` lines)",
}
_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "greater than or equal to"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "less than or equal to")}
_LIST_TYPES = {"tuple_type", "list_type", "set_type", "frozen_set_type", "iterable_type"}


def plain_message(err: dict[str, Any], path: Path_) -> str:
    """One pydantic error (``errors(include_input=True)``) in plain words; ``path`` is its field path."""
    kind, ctx, given = err["type"], err.get("ctx") or {}, _no_keys(err.get("input"))
    if kind == "extra_forbidden":
        key, known = path[-1] if path else "?", fields_at(path[:-1])
        listing = f"; fields here: {', '.join(known)}" if known else ""
        return f"unknown field {key!r}{did_you_mean(key, known)}{listing}"
    if kind == "missing":
        return "required, but missing"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        what = "key" if path and path[-1] == "[key]" else "value"
        return f"{what} {given!r} is not one of: {', '.join(options)}{did_you_mean(given, options)}"
    if kind in _LIST_TYPES:
        return f"expected {list_hint(path)}, got {describe(given)}"
    if kind in _KINDS:
        return f"expected {_KINDS[kind]}, got {describe(given)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        bound = ctx.get(key)
        return f"must be {words} {bound:g}, got {given!r}" if isinstance(bound, (int, float)) else \
            f"must be {words} {bound}, got {given!r}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    return str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "expected")


# what an API key looks like (OpenAI / DeepSeek / Anthropic style, Google, bearer tokens): never echoed
_KEY_LIKE = re.compile(r"(?:sk|pk|rk)-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{20,}|(?<=Bearer )[A-Za-z0-9._~+/\-]{8,}")


def _no_keys(value: Any) -> Any:
    """A value from the file as an error may show it: key-like text replaced by ``***``."""
    return _KEY_LIKE.sub("***", value) if isinstance(value, str) else value


def list_hint(path: Path_) -> str:
    names = [p for p in path if isinstance(p, str)]
    if len(path) >= 2 and path[-2] == "ladders":
        return _LIST_HINTS["ladder"]
    return _LIST_HINTS.get(names[-1] if names else "", "a list")


def describe(value: Any) -> str:
    """What the file gave, in YAML's words."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {shown!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def fields_at(path: Path_) -> list[str]:
    """The field names the schema allows at ``path`` (a mapping of the policy), or [] when unknown."""
    tp: Any = Policy
    for step in path:
        model = _model_in(tp)
        if model is not None:
            field = next((f for n, f in model.model_fields.items() if step in (n, f.alias)), None)
            if field is None:
                return []
            tp = field.annotation
        else:
            tp = _item_type(tp, step)
            if tp is None:
                return []
    model = _model_in(tp)
    return [f.alias or n for n, f in model.model_fields.items()] if model is not None else []


def _model_in(tp: Any) -> type[BaseModel] | None:
    """The pydantic model ``tp`` is, once Annotated and Optional are unwrapped."""
    while True:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            inner = [a for a in get_args(tp) if a is not type(None)]
            if len(inner) != 1:
                return None
            tp = inner[0]
        else:
            return None


def _item_type(tp: Any, step: str | int) -> Any:
    """The type of item ``step`` of a tuple / dict annotation (unwrapping Optional), or None."""
    while get_origin(tp) in (Annotated, Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0] if args else None
    args = get_args(tp)
    if get_origin(tp) is tuple and isinstance(step, int) and args:
        return args[0]
    if get_origin(tp) is dict and isinstance(step, str) and len(args) == 2:
        return args[1]
    return None


def raw_reference_problems(data: Any) -> list[tuple[str, str]]:
    """:func:`policies.schema.reference_problems` of raw YAML data (a dict after ``extends``): the
    cross-field problems pydantic cannot report when a field of the file is already wrong."""
    catalog = data.get("catalog") if isinstance(data, dict) else None
    escalation = data.get("escalation") if isinstance(data, dict) else None
    if not isinstance(catalog, dict) or not isinstance(escalation, dict):
        return []
    capabilities = {str(alias): _string_list(spec.get("capabilities")) if isinstance(spec, dict) else None
                    for alias, spec in catalog.items()}
    ladders = escalation.get("ladders")
    if not isinstance(ladders, dict):
        return []
    default_checks = escalation.get("checks", [])
    raw: dict[str, list] = {}
    for modality, rungs in ladders.items():
        if modality not in MODALITY_CAPABILITY or not isinstance(rungs, list):
            continue
        raw[modality] = []
        for i, rung in enumerate(rungs):
            model = rung if isinstance(rung, str) else rung.get("model") if isinstance(rung, dict) else None
            own = rung.get("checks") if isinstance(rung, dict) else None
            where = f"escalation.ladders.{modality}.{i}.checks" if own is not None else "escalation.checks"
            if isinstance(model, str):
                raw[modality].append((model, _agreements(default_checks if own is None else own), where))
    routing = data.get("routing") if isinstance(data.get("routing"), dict) else {}
    thresholds = routing.get("thresholds", RoutingConfig().thresholds)
    n_thresholds = len(thresholds) if isinstance(thresholds, list | tuple) else None
    return reference_problems(capabilities, raw, n_thresholds)


def _string_list(value: Any) -> list[str] | None:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else None


def _agreements(checks: Any) -> list[Any]:
    if not isinstance(checks, list):
        return []
    return [c["with"] for c in checks if isinstance(c, dict) and c.get("name") == "agreement" and "with" in c]
