"""Load a Policy from YAML: ``${VAR}`` / ``${VAR:-default}`` interpolation, and errors that name the
file, the line and the field path (``ConfigError``), never a traceback."""
from __future__ import annotations

import contextvars
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import ValidationError

from policies.errors import ConfigError
from policies.messages import plain_message, raw_reference_problems
from policies.schema import Policy

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PATH_PREFIX = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w\-]+)+): ")
BUILTIN_POLICIES = ("default", "budget-strict", "quality-first", "quality-match")
Path_ = tuple[str | int, ...]


def builtin_policy_path(name: str) -> Path:
    return Path(str(resources.files("policies").joinpath(f"{name}.yaml")))


def load_policy(source: "str | os.PathLike[str] | Policy", env: Mapping[str, str] | None = None) -> Policy:
    """A Policy from a built-in name (``default``), a YAML path, or a Policy (returned as is)."""
    if isinstance(source, Policy):
        return source
    path, text = _read_policy(str(source), Path(), what=f"{source}: ", source=str(source))
    return parse_policy(text, source=str(path), env=env)


def _read_policy(ref: str, base_dir: Path, *, what: str, source: str) -> tuple[Path, str]:
    """The file a policy reference names (a built-in name, else a path relative to ``base_dir``) and
    its text. ``what`` starts every error message (``"ref: "`` or ``"file:line: extends: 'ref': "``)."""
    if ref in BUILTIN_POLICIES:
        path = builtin_policy_path(ref)
    else:
        path = (base_dir / Path(ref).expanduser()).expanduser()
        if not _is_file(path):
            raise ConfigError(f"{what}no such policy file (built-in policies: "
                              f"{', '.join(BUILTIN_POLICIES)})", source=source)
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}cannot read policy file {path}: {exc}", source=source) from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):          # name too long, NUL byte, ...
        return False


def parse_policy(text: str, *, source: str = "<string>", env: Mapping[str, str] | None = None) -> Policy:
    try:
        return _parse(text, source, env)
    except RecursionError:
        raise ConfigError(f"{source}: the YAML refers to itself (recursive anchor) or nests too deeply",
                          source=source) from None


def _parse(text: str, source: str, env: Mapping[str, str] | None) -> Policy:
    data, lines = _compose(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: a policy must be a YAML mapping, got {type(data).__name__}",
                          source=source, errors=[(f"{source}:1", "not a mapping")])
    env = os.environ if env is None else env
    token = _SUBSTITUTED.set([])
    try:
        data = _interpolate(data, (), lines, source, env)
        data = _apply_extends(data, source, env, depth=0, lines=lines)
        try:
            return Policy.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, lines, source, data) from None
    finally:
        _SUBSTITUTED.reset(token)


def _apply_extends(data: dict, source: str, env: Mapping[str, str], depth: int,
                   lines: dict[Path_, int] | None = None) -> dict:
    """``extends: default`` (or a path relative to this file): deep-merge this file over the base."""
    base_ref = data.pop("extends", None)
    if base_ref is None:
        return data
    where = _where(("extends",), lines or {}, source)
    if not isinstance(base_ref, str) or depth > 8:
        raise ConfigError(f"{where}: extends: must name one policy (and chains stop at 8 levels)", source=source)
    base_path, base_text = _read_policy(base_ref, Path(source).parent, what=f"{where}: extends: {base_ref!r}: ",
                                        source=source)
    base_data, base_lines = _compose(base_text, str(base_path))
    if not isinstance(base_data, dict):
        raise ConfigError(f"{where}: extends: {base_path} is not a policy mapping", source=source)
    base_data = _interpolate(base_data, (), base_lines, str(base_path), env)
    return _merge(_apply_extends(base_data, str(base_path), env, depth + 1, base_lines), data)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in over.items()}}
    return over


def _compose(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{source}:1: the policy file is empty", source=source)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}:{line}: YAML syntax error: {problem}", source=source,
                          errors=[(f"{source}:{line}", f"YAML syntax error: {problem}")]) from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML refers to itself (recursive anchor)", source=source) from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[Path_, int] = {}
    _record_lines(node, (), lines, set())
    return data, lines


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], seen: set[int]) -> None:
    if id(node) in seen:           # an alias: its lines were recorded where the anchor is
        return
    seen.add(id(node))
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines, seen)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, path + (i,), lines, seen)


_SUBSTITUTED: "contextvars.ContextVar[list[str] | None]" = contextvars.ContextVar("policy_substituted", default=None)


def _interpolate(value: Any, path: Path_, lines: dict[Path_, int], source: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), lines, source, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), lines, source, env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            used = _SUBSTITUTED.get()
            if used is not None and len(env[name]) >= 4:
                used.append(env[name])           # never shown back in an error (it may be a key)
            return env[name]
        if default is not None:
            return default
        where = _where(path, lines, source)
        raise ConfigError(f"{where}: {_dotted(path)}: environment variable {name} is not set "
                          f"(write ${{{name}:-default}} to give a default)", source=source,
                          errors=[(where, f"{name} is not set")])

    return _VAR.sub(substitute, value)


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _where(path: Path_, lines: dict[Path_, int], source: str) -> str:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return f"{source}:{lines[path[:end]]}"
    return f"{source}:1"


def _config_error(exc: ValidationError, lines: dict[Path_, int], source: str, data: Any) -> ConfigError:
    """Every problem of the file, in plain words: pydantic's errors, then the cross-field problems that
    pydantic did not reach because a field was already wrong (an unknown model in a ladder)."""
    found: list[tuple[Path_, str]] = []
    secrets = sorted(set(_SUBSTITUTED.get() or ()), key=len, reverse=True)
    for err in exc.errors(include_url=False, include_input=True):
        path: Path_ = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = _hidden(plain_message({**err, "input": _hidden(err.get("input"), secrets)}, path), secrets)
        m = _PATH_PREFIX.match(message)
        if m and not path:
            path, message = _path_of(m.group(1)), message[m.end():]
        found.append((tuple(p for p in path if p != "[key]"), message))
    found += [(_path_of(where), message) for where, message in raw_reference_problems(data)]
    errors = [(f"{_where(path, lines, source)}: {_dotted(path)}", message) for path, message in dict.fromkeys(found)]
    summary = "\n".join(f"{where}: {msg}" for where, msg in errors)
    return ConfigError(f"invalid policy {source}:\n{summary}", source=source, errors=errors)


def _hidden(value: Any, secrets: list[str]) -> Any:
    """``value`` with every substituted environment value replaced by ``***`` (a text, or the texts of a
    list or mapping): an error never shows what ``${VAR}`` held."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, list):
        return [_hidden(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _hidden(v, secrets) for k, v in value.items()}
    return value


def _path_of(dotted: str) -> Path_:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
