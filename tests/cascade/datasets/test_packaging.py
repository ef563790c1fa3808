"""Packaging: compatible ranges in pyproject, the extras, and the one-line error a missing extra gives."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app, run_app
from cascade.extras import EXTRA_OF, MissingExtra, require
from policies.errors import CascadeError

ROOT = Path(__file__).resolve().parents[3]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
commands.register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
DIST = {"prometheus_client": "prometheus-client", "starlette": "fastapi", "opentelemetry": "opentelemetry-sdk"}


def block(monkeypatch, *modules: str) -> None:
    """Make ``import m`` fail as if the package were not installed."""
    for name in list(sys.modules):
        if name.split(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_core_dependencies_are_ranges_and_extras_hold_the_optional_packages():
    deps = PROJECT["dependencies"]
    assert deps and not any("==" in d for d in deps)
    assert all(">=" in d for d in deps)
    extras = PROJECT["optional-dependencies"]
    for module, extra in EXTRA_OF.items():
        assert any(d.startswith(DIST.get(module, module)) for d in extras[extra]), (module, extra)
        assert not any(d.startswith(DIST.get(module, module)) for d in deps), module
    assert "deepseek-cascade[server,plot,redis,train,otel]" in extras["dev"]
    assert any(d.startswith("scikit-learn") for d in extras["train"])


def test_the_core_imports_no_extra():
    code = ("import sys, cascade, cascade.router, cascade.cli, cascade.commands, cascade.replay.run, "
            "cascade.datasets.fetch, cascade.budget, cascade.server; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(%r)))" % sorted(EXTRA_OF))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_require_names_the_extra(monkeypatch):
    block(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtra) as info:
        require("matplotlib.figure", "a plot")
    assert isinstance(info.value, ImportError) and isinstance(info.value, CascadeError)
    assert "a plot needs matplotlib" in str(info.value) and "pip install 'deepseek-cascade[plot]'" in str(info.value)


def test_a_redis_store_without_redis_names_the_extra(monkeypatch):
    from cascade.budget import open_budget_store
    block(monkeypatch, "redis")
    with pytest.raises(MissingExtra, match=r"redis:// budget store needs redis.*deepseek-cascade\[redis\]"):
        open_budget_store("redis://127.0.0.1:1/0")


def test_the_server_package_without_fastapi_names_the_extra(monkeypatch):
    import cascade.server
    block(monkeypatch, "fastapi", "starlette")
    monkeypatch.delitem(sys.modules, "cascade.server.app", raising=False)
    with pytest.raises(MissingExtra, match=r"deepseek-cascade\[server\]"):
        cascade.server.create_app


def test_replay_plot_without_matplotlib_fails_before_replaying(monkeypatch, tmp_path):
    block(monkeypatch, "matplotlib")
    res = runner.invoke(app, ["replay", "--policy", "default", "--plot", str(tmp_path / "p.png"), "--quiet"])
    assert res.exit_code == 2 and "deepseek-cascade[plot]" in res.output and "Traceback" not in res.output
    assert "Replay" not in res.output


def test_cascade_serve_without_uvicorn_is_one_line_exit_2(monkeypatch, capsys):
    block(monkeypatch, "uvicorn")
    monkeypatch.setattr(sys, "argv", ["cascade", "serve", "--port", "1"])
    with pytest.raises(SystemExit) as info:
        run_app(app)
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cascade serve needs uvicorn" in err and "deepseek-cascade[server]" in err and "Traceback" not in err
