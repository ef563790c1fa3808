"""Bearer API keys for ``cascade serve --keys FILE``.

The keys file is YAML or JSON (JSON is YAML): a mapping of API key → who pays, either at the top level
or under ``keys:``. Who pays is a user name, or a mapping with the user and optionally the team and org
it belongs to and a name for the key::

    # keys.yaml
    keys:
      sk-cascade-alice-7f3a9c1e0b: alice                                   # a user (the first format)
      sk-cascade-bob-2d8e4f6a11: {user: bob, team: ml, org: acme}
      sk-cascade-carol-93b1c4d2e8: {user: carol, team: ml, org: acme, name: carol-ci}

An optional ``admins:`` list (beside ``keys:``) names the users whose keys may read ``/dashboard/data.json``
(every user's spend); other keys get 403 there::

    keys: {sk-cascade-ops-5c1b2a9d77: ops, sk-cascade-alice-7f3a9c1e0b: alice}
    admins: [ops]

A request must then send ``Authorization: Bearer <key>``; the key's :class:`~policies.budget.Principal`
(user, team, org and key label) is charged — each level against its caps (``budgets.per_org``,
``per_team``, ``per_user``, ``per_key``), in one atomic reservation — and the body's ``user`` field is
ignored. The key label is the entry's ``name``, else ``key-`` and the first 12 hex digits of the key's
SHA-256: the key itself is never stored, logged or traced. Keys are at least 8 characters; names are
non-empty strings (several keys may map to one user). Keys are compared in constant time
(``hmac.compare_digest`` over SHA-256 digests, every key compared on every request) and never appear in
an error message, a log line or a response.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Mapping

from policies.budget import Principal, user_of
from policies.errors import ConfigError

__all__ = ["KeyRing", "load_keys", "key_label", "MIN_KEY_CHARS"]

MIN_KEY_CHARS = 8


_LEVELS = ("user", "team", "org", "name")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_label(key: str) -> str:
    """The label of a key without a ``name``: ``key-`` and 12 hex digits of its SHA-256 (not the key)."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class KeyRing:
    """API key → Principal. ``principal_for(authorization_header)`` is the key's principal (user, team,
    org, key label), ``user_for`` its user; None for no / a wrong key."""

    def __init__(self, keys: Mapping[str, str | Mapping[str, str]], admins: Any = ()) -> None:
        entries = _validated(keys, source="keys")
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple((_digest(k), p) for k, p in entries)
        self.admins = _admins(admins, {p.user for _, p in entries if p.user is not None}, source="keys")

    def is_admin(self, user: Principal | str | None) -> bool:
        """Whether ``user`` (a user name, or a key's Principal) is one of the ``admins:``."""
        name = user_of(user)
        return name is not None and name in self.admins

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing({len(self._entries)} keys)"

    @property
    def users(self) -> list[str]:
        return sorted({p.user for _, p in self._entries if p.user is not None})

    @property
    def principals(self) -> list[Principal]:
        """Every key's principal, in file order (key labels only: never the keys)."""
        return [p for _, p in self._entries]

    def user_for(self, authorization: str | None) -> str | None:
        principal = self.principal_for(authorization)
        return None if principal is None else principal.user

    def principal_for(self, authorization: str | None) -> Principal | None:
        key = bearer_token(authorization)
        if key is None:
            return None
        presented = _digest(key)
        found: Principal | None = None
        for digest, principal in self._entries:     # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, digest):
                found = principal
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
    return KeyRing(keys, _admins(admins, _user_names(keys), source=str(file)))


def _user_names(keys: Mapping[str, Any]) -> set[str]:
    """The user names a keys mapping's entries (a user name, or {user, ...}) give."""
    users = (who.get("user") if isinstance(who, Mapping) else who for who in keys.values())
    return {u for u in users if isinstance(u, str)}


def _admins(admins: Any, users: set[str], *, source: str) -> frozenset[str]:
    """The admin user names: a list of users the keys map to (a ConfigError names the file and the user)."""
    if isinstance(admins, str) or not isinstance(admins, (list, tuple, set, frozenset)):
        raise ConfigError(f"{source}: admins must be a list of user names", source=source)
    for name in admins:
        if name not in users:
            raise ConfigError(f"{source}: admins: {name!r} is not the user of any key", source=source)
    return frozenset(admins)


def _as_str_mapping(data: Mapping[Any, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, (key, user) in enumerate(data.items()):
        if not isinstance(key, str):
            raise ConfigError(f"{source}: entry {i + 1}: the API key must be a string", source=source)
        out[key] = user
    _validated(out, source=source)
    return out


def _validated(keys: Mapping[str, Any], *, source: str) -> list[tuple[str, Principal]]:
    entries = []
    for i, (key, who) in enumerate(keys.items()):
        user = who.get("user") if isinstance(who, Mapping) else who
        where = f"{source}: entry {i + 1}" + (f" (user {user!r})" if isinstance(user, str) else "")
        if not isinstance(key, str) or len(key.strip()) < MIN_KEY_CHARS or key != key.strip() or " " in key:
            raise ConfigError(f"{where}: an API key must be a string of at least {MIN_KEY_CHARS} "
                              "characters without spaces", source=source)
        entries.append((key, _principal(key, who, where, source)))
    if not entries:
        raise ConfigError(f"{source}: no API keys", source=source)
    return entries


def _principal(key: str, who: Any, where: str, source: str) -> Principal:
    """A key's entry (a user name, or {user, team?, org?, name?}) as its Principal."""
    if not isinstance(who, Mapping):
        who = {"user": who}
    unknown = sorted(str(k) for k in who if k not in _LEVELS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; a key maps to a user name or to "
                          "{user, team, org, name}", source=source)
    for field in _LEVELS:
        value = who.get(field)
        if (field == "user" or value is not None) and (not isinstance(value, str) or not value.strip()):
            what = "the user name" if field == "user" else f"{field!r}"
            raise ConfigError(f"{where}: {what} must be a non-empty string", source=source)
    return Principal(user=who["user"], team=who.get("team"), org=who.get("org"),
                     key=who.get("name") or key_label(key))
