"""Bearer API keys for ``cascade serve --keys FILE``.

The keys file is YAML or JSON (JSON is YAML): a mapping of API key → user name, either at the top level
or under ``keys:``::

    # keys.yaml
    keys:
      sk-cascade-alice-7f3a9c1e0b: alice
      sk-cascade-bob-2d8e4f6a11: bob

An optional ``admins:`` list (beside ``keys:``) names the users whose keys may read ``/dashboard/data.json``
(every user's spend); other keys get 403 there::

    keys: {sk-cascade-ops-5c1b2a9d77: ops, sk-cascade-alice-7f3a9c1e0b: alice}
    admins: [ops]

A request must then send ``Authorization: Bearer <key>``; the mapped user name is the user whose
budget is charged (the body's ``user`` field is ignored). Keys are at least 8 characters; user names
are non-empty strings (several keys may map to one user). Keys are compared in constant time
(``hmac.compare_digest`` over SHA-256 digests, every key compared on every request) and never
appear in an error message, a log line or a response.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Mapping

from policies.errors import ConfigError

__all__ = ["KeyRing", "load_keys", "MIN_KEY_CHARS"]

MIN_KEY_CHARS = 8


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    """API key → user. ``user_for(authorization_header)`` is the user, or None for no / a wrong key."""

    def __init__(self, keys: Mapping[str, str], admins: Any = ()) -> None:
        entries = _validated(keys, source="keys")
        self._entries: tuple[tuple[bytes, str], ...] = tuple((_digest(k), u) for k, u in entries)
        self.admins = _admins(admins, {u for _, u in entries}, source="keys")

    def is_admin(self, user: str | None) -> bool:
        return user is not None and user in self.admins

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing({len(self._entries)} keys)"

    @property
    def users(self) -> list[str]:
        return sorted({u for _, u in self._entries})

    def user_for(self, authorization: str | None) -> str | None:
        key = bearer_token(authorization)
        if key is None:
            return None
        presented = _digest(key)
        found: str | None = None
        for digest, user in self._entries:      # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, digest):
                found = user
        return found


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def load_keys(path: str | os.PathLike[str]) -> KeyRing:
    """Read a keys file (see the module docstring); ConfigError naming the file (never a key)."""
    import yaml

    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the keys file: {exc.strerror or exc}", source=str(file)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{file}{where}: the keys file is not valid YAML/JSON", source=str(file)) from None
    admins: Any = ()
    if isinstance(data, Mapping) and "keys" in data and set(data) <= {"keys", "admins"}:
        data, admins = data["keys"], data.get("admins") or ()
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{file}: expected a non-empty mapping of API key to user name "
                          "(at the top level or under 'keys:')", source=str(file))
    keys = _as_str_mapping(data, str(file))
    return KeyRing(keys, _admins(admins, set(keys.values()), source=str(file)))


def _admins(admins: Any, users: set[str], *, source: str) -> frozenset[str]:
    """The admin user names: a list of users the keys map to (a ConfigError names the file and the user)."""
    if isinstance(admins, str) or not isinstance(admins, (list, tuple, set, frozenset)):
        raise ConfigError(f"{source}: admins must be a list of user names", source=source)
    for name in admins:
        if name not in users:
            raise ConfigError(f"{source}: admins: {name!r} is not the user of any key", source=source)
    return frozenset(admins)


def _as_str_mapping(data: Mapping[Any, Any], source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (key, user) in enumerate(data.items()):
        if not isinstance(key, str):
            raise ConfigError(f"{source}: entry {i + 1}: the API key must be a string", source=source)
        out[key] = user
    _validated(out, source=source)
    return out


def _validated(keys: Mapping[str, Any], *, source: str) -> list[tuple[str, str]]:
    entries = []
    for i, (key, user) in enumerate(keys.items()):
        where = f"{source}: entry {i + 1}" + (f" (user {user!r})" if isinstance(user, str) else "")
        if not isinstance(key, str) or len(key.strip()) < MIN_KEY_CHARS or key != key.strip() or " " in key:
            raise ConfigError(f"{where}: an API key must be a string of at least {MIN_KEY_CHARS} "
                              "characters without spaces", source=source)
        if not isinstance(user, str) or not user.strip():
            raise ConfigError(f"{where}: the user name must be a non-empty string", source=source)
        entries.append((key, user))
    if not entries:
        raise ConfigError(f"{source}: no API keys", source=source)
    return entries
