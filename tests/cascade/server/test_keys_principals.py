"""Keys files that map a key to a user, team, org and key name (``cascade serve --keys``); the first format
(key → user name) keeps working beside it."""
from __future__ import annotations

import pytest

from cascade.server.auth import KeyRing, key_label, load_keys
from policies.budget import Principal
from policies.errors import ConfigError

KEY_A, KEY_B, KEY_C = "sk-cascade-alice-0123456789", "sk-cascade-bob-9876543210", "sk-cascade-carol-5555555555"


def test_mixed_formats_give_each_key_its_principal(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  {KEY_A}: alice\n  {KEY_B}: {{user: bob, team: ml, org: acme, name: bob-ci}}\n"
                    f"  {KEY_C}: {{user: carol, team: ml}}\n")
    ring = load_keys(path)
    assert ring.principal_for(f"Bearer {KEY_A}") == Principal("alice", key=key_label(KEY_A))
    assert ring.principal_for(f"Bearer {KEY_B}") == Principal("bob", team="ml", org="acme", key="bob-ci")
    assert ring.principal_for(f"Bearer {KEY_C}") == Principal("carol", team="ml", key=key_label(KEY_C))
    assert ring.user_for(f"Bearer {KEY_B}") == "bob" and ring.users == ["alice", "bob", "carol"]
    assert ring.principal_for(f"Bearer {KEY_B}x") is None
    assert all(k not in repr(ring.principals) for k in (KEY_A, KEY_B, KEY_C))     # labels, never keys
    assert key_label(KEY_A).startswith("key-") and len(key_label(KEY_A)) == 16 and key_label(KEY_A) != key_label(KEY_B)


@pytest.mark.parametrize("entry, words", [
    ("{team: ml}", "the user name must be a non-empty string"),
    ("{user: bob, team: ''}", "'team' must be a non-empty string"),
    ("{user: bob, org: [a]}", "'org' must be a non-empty string"),
    ("{user: bob, tema: ml}", "unknown field(s) tema"),
])
def test_bad_entries_name_the_file_and_field_never_the_key(tmp_path, entry, words):
    path = tmp_path / "keys.yaml"
    path.write_text(f"{KEY_A}: {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_keys(path)
    assert str(path) in str(info.value) and words in str(info.value) and KEY_A not in str(info.value)


def test_a_keyring_from_a_mapping_accepts_both_forms():
    ring = KeyRing({KEY_A: "alice", KEY_B: {"user": "bob", "team": "ml"}})
    assert ring.principal_for(f"Bearer {KEY_B}").team == "ml"


def test_admins_are_named_by_user_whatever_the_entry_form(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  {KEY_A}: {{user: ops, team: platform}}\n  {KEY_B}: bob\nadmins: [ops]\n")
    ring = load_keys(path)
    assert ring.is_admin(ring.principal_for(f"Bearer {KEY_A}")) and ring.is_admin("ops")
    assert not ring.is_admin(ring.principal_for(f"Bearer {KEY_B}")) and not ring.is_admin(None)
    path.write_text(f"keys:\n  {KEY_A}: {{user: ops}}\nadmins: [root]\n")
    with pytest.raises(ConfigError, match="admins: 'root' is not the user of any key"):
        load_keys(path)
