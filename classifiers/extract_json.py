"""The JSON final answer of a model answer (pure): the whole answer, a fenced block, or the first object in
the text; a dotted field path; canonical JSON. ``extract(text, "json:<field>")`` in :mod:`classifiers.extract`."""
from __future__ import annotations

import itertools
import json
import re
from typing import Any

_FENCED = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.DOTALL)
_JSON_STARTS = 20  # "{" / "[" positions tried when neither the whole answer nor a fenced block parses


def _json_documents(text: str) -> list[Any]:
    """JSON values in the answer: the whole text, fenced blocks, then the first object or array."""
    candidates = [text.strip()] + [block.strip() for block in _FENCED.findall(text)]
    found = []
    for candidate in candidates:
        try:
            found.append(json.loads(candidate))
        except (ValueError, RecursionError):
            continue
    if not found:
        decoder = json.JSONDecoder()
        for match in itertools.islice(re.finditer(r"[{\[]", text), _JSON_STARTS):
            try:
                found.append(decoder.raw_decode(text, match.start())[0])
                break
            except (ValueError, RecursionError):
                continue
    return found


def _walk(value: Any, path: str) -> Any:
    for step in path.split(".") if path else ():
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            raise KeyError(step)
    return value


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 63:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def extract_json(text: str, path: str = "") -> str | None:
    """The canonical JSON of ``path`` in the answer's JSON (the whole document for ""), or None."""
    for document in _json_documents(text):
        try:
            value = _walk(document, path)
        except KeyError:
            continue
        return json.dumps(_integral(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return None
