"""`open_budget_store` URL handling, the registry, password masking and import hygiene."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cascade.budget import (BUDGET_STORES, BudgetStore, MemoryBudgetStore, mask_url,
                            open_budget_store)
from policies.errors import ConfigError


def test_memory_url():
    store = open_budget_store("memory://")
    assert isinstance(store, MemoryBudgetStore) and isinstance(store, BudgetStore)
    assert store.url == "memory://"


def test_sqlite_relative_url_resolves_against_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_budget_store("sqlite:///relative.db")
    assert store.path == tmp_path / "relative.db"
    assert store.url == f"sqlite:///{tmp_path}/relative.db"


def test_sqlite_absolute_url_creates_the_directory_on_first_use(tmp_path):
    path = tmp_path / "a" / "b" / "budget.db"
    store = open_budget_store(f"sqlite:///{path}")
    assert store.url == f"sqlite:///{path}" and store.url.startswith("sqlite:////")
    assert not path.parent.exists()               # no I/O until the store is used
    assert store.total_spent() == 0.0
    assert path.is_file()
    store.close()


def test_sqlite_home_url_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = open_budget_store("sqlite:///~/cascade/x.db")
    assert store.path == tmp_path / "cascade" / "x.db"


def test_redis_urls_open_without_connecting():
    from cascade.budget.redis_store import RedisBudgetStore

    plain = open_budget_store("redis://127.0.0.1:1/3")
    secure = open_budget_store("rediss://:hunter2@example.invalid:6380/0")
    assert isinstance(plain, RedisBudgetStore) and isinstance(secure, RedisBudgetStore)
    assert plain.url == "redis://127.0.0.1:1/3"
    assert "hunter2" not in secure.url and "hunter2" not in repr(secure) and "hunter2" not in str(secure)
    assert secure.url == "rediss://:***@example.invalid:6380/0"
    plain.close()
    secure.close()


@pytest.mark.parametrize("url", [
    "postgres://admin:hunter2@db/budget", "hunter2", "", "memory", "memory://somewhere",
    "sqlite://relative.db", "sqlite:///", "sqlite://///x.db", "sqlite:///x.db?mode=ro",
    "redis://:hunter2@host:notaport/0", "redis://:hunter2@host:6379/zero", "redis://:hunter2@/0",
    "ftp://u:hunter2@h/x",
])
def test_bad_urls_raise_config_error_without_the_password(url):
    with pytest.raises(ConfigError) as info:
        open_budget_store(url)
    message = str(info.value)
    if "hunter2@" in url:
        assert "hunter2" not in message and "***" in message
    assert "budget store URL" in message


def test_the_registry_is_an_explicit_dict(monkeypatch):
    assert set(BUDGET_STORES) == {"memory", "sqlite", "redis", "rediss"}
    made = MemoryBudgetStore()
    monkeypatch.setitem(BUDGET_STORES, "custom", lambda url: made)
    assert open_budget_store("custom://anything") is made
    assert open_budget_store("CUSTOM://x") is made


@pytest.mark.parametrize("url,masked", [
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("redis://user:pw@h/0", "redis://user:***@h/0"),
    ("redis://pw@h/0", "redis://***@h/0"),
    ("redis://:p/w@d@h/0", "redis://:***@h/0"),
    ("rediss://h:6380/0?password=pw&ssl_cert_reqs=none", "rediss://h:6380/0?password=***&ssl_cert_reqs=none"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("sqlite:////home/me@work/b.db", "sqlite:////home/me@work/b.db"),
    ("memory://", "memory://"),
    ("not a url", "not a url"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_importing_the_package_does_not_import_redis_or_open_anything():
    code = ("import sys, cascade.budget as b; s = b.open_budget_store('memory://'); "
            "assert 'redis' not in sys.modules, 'redis imported'; "
            "assert 'cascade.budget.sqlite' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_lazy_store_classes_are_reachable_from_the_package():
    import cascade.budget as budget

    assert budget.SQLiteBudgetStore.__name__ == "SQLiteBudgetStore"
    assert budget.RedisBudgetStore.__name__ == "RedisBudgetStore"
    with pytest.raises(AttributeError):
        budget.NoSuchStore  # noqa: B018
