"""Reading and parsing a request body: every failure is a 4xx that says what is wrong and where.

    failure                                               status  code                 param
    ────────────────────────────────────────────────────  ──────  ───────────────────  ───────────────
    over the body limit (Content-Length or bytes read)    413     request_too_large
    not UTF-8 / not JSON / not an object                  400     invalid_json
    nested deeper than MAX_DEPTH (RecursionError too)     400     invalid_json         the deep place
    an integer too long to convert (> 4,300 digits)       400     invalid_value        its path
    NaN, Infinity, or a float beyond IEEE range (1e400)   400     invalid_value        its path
    a lone surrogate escape ("\\ud800")                    400     invalid_value        its path

The common body costs one ``json.loads`` plus two byte searches: the walks that find *where* a bad
value sits run only when something is wrong, or when the body has enough brackets to be deep.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Iterator

from starlette.requests import Request

from cascade.server.errors import ApiError

__all__ = ["MAX_DEPTH", "parse_json", "read_body"]

MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes (before parsing)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid Content-Length header: expected a number of bytes")
        if int(declared) > limit:
            raise too_large(limit)
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large(limit)
        parts.append(part)
    return b"".join(parts)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body exceeds the server's limit of {limit:,} bytes",
                    code="request_too_large", outcome="too_large")


class _BadNumber(ValueError):
    """A number JSON allows to be written but this API cannot take (raised by the parse hooks)."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(text)
    return value


def _constant(text: str) -> float:
    raise _BadNumber(text)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The request object, or an ApiError naming what is wrong and where."""
    try:
        data = json.loads(raw, parse_float=_finite, parse_constant=_constant)
    except RecursionError:
        raise _too_deep(None) from None
    except _BadNumber:
        raise _locate_bad_number(raw) from None
    except UnicodeDecodeError:
        raise ApiError(400, "The request body is not valid UTF-8: expected a JSON object.",
                       code="invalid_json") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):        # CPython's limit on the digits of an int
            raise _locate_bad_number(raw) from None
        raise ApiError(400, "We could not parse the JSON body of your request: expected a JSON object "
                            f"({exc}).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got a JSON {_kind(data)}", code="invalid_json")
    check_structure(data, deep=raw.count(b"[") + raw.count(b"{") > MAX_DEPTH,
                    surrogates=_SURROGATE_ESCAPE.search(raw) is not None)
    return data


def check_structure(data: Any, *, deep: bool = True, surrogates: bool = True) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings with a lone surrogate (JSON lets ``\\ud800``
    through; no provider takes it). Each walk runs only when the raw body says it might find something."""
    if not (deep or surrogates):
        return
    for path, value, depth in _walk(data):
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        if surrogates and isinstance(value, str):
            _check_text(value, path)
        elif surrogates and isinstance(value, dict):
            for key in value:
                _check_text(key, f"{path} (a key)" if path else "a key")


def _check_text(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(400, f"Invalid value for {path!r}: not valid unicode (a lone surrogate at character "
                            f"{exc.start}); expected text of valid UTF-16 pairs.",
                       param=path, code="invalid_value") from None


def _walk(data: Any) -> Iterator[tuple[str, Any, int]]:
    """(path, value, depth) of every value, iteratively (no recursion limit to hit)."""
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if isinstance(value, dict):
            stack.extend((_key_path(path, k), v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(value))


def _key_path(path: str, key: str) -> str:
    shown = key if len(key) <= 64 else key[:64] + "..."
    return f"{path}.{shown}" if path else shown


def _too_deep(path: str | None) -> ApiError:
    where = f" (at {path})" if path else ""
    return ApiError(400, f"The JSON body is nested too deeply{where}: at most {MAX_DEPTH} levels of arrays and "
                         "objects are accepted.", param=path or None, code="invalid_json")


class _Marker:
    def __init__(self, text: str) -> None:
        self.text = text


def _locate_bad_number(raw: bytes) -> ApiError:
    """Parse again with hooks that keep bad numbers as markers, and name the first one's place."""
    def keep(convert: Callable[[str], Any]) -> Callable[[str], Any]:
        def hook(text: str) -> Any:
            try:
                return convert(text)
            except ValueError:
                return _Marker(text)
        return hook
    try:
        data = json.loads(raw, parse_int=keep(int), parse_float=keep(_finite), parse_constant=_Marker)
        found = next(((p, v) for p, v, _ in _walk(data) if isinstance(v, _Marker)), None)
    except (ValueError, RecursionError):
        found = None
    if found is None:
        return ApiError(400, "The JSON body holds a number this API cannot take (NaN, Infinity, or too large).",
                        code="invalid_value")
    path, marker = found
    return ApiError(400, f"Invalid value for {path!r}: {_describe(marker.text)}; expected a finite number.",
                    param=path or None, code="invalid_value")


def _describe(text: str) -> str:
    if text in ("NaN", "Infinity", "-Infinity"):
        return f"{text} is not a number JSON allows"
    digits = sum(c.isdigit() for c in text)
    if re.fullmatch(r"-?\d+", text):
        return f"an integer of {digits:,} digits is too large"
    return f"{text[:24]}{'...' if len(text) > 24 else ''} is beyond the range of a 64-bit float"


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")
