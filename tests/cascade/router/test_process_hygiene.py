"""What a process using Routers leaves behind: no "Task was destroyed" / "never awaited" noise from
litellm's logging worker when Routers and event loops are mixed, and nothing written in the home
directory before it is needed (and then said). Each case runs in a fresh Python process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.fake_provider import answer

from .conftest import provider_env

ROOT = Path(__file__).resolve().parents[3]

PRELUDE = """
import asyncio, os, sys
from cascade.router import Router
MSGS = [{"role": "user", "content": "What is the capital of France?"}]
ENV = {k: v for k, v in os.environ.items()}
"""

MIXED_LOOPS = PRELUDE + """
r1 = Router("default", env=ENV, transport="litellm", budget_store="memory://")
print(r1.complete(MSGS).choices[0].message.content)                  # r1's own loop thread
print(asyncio.run(r1.acomplete(MSGS)).choices[0].message.content)    # another loop
r2 = Router("default", env=ENV, transport="litellm", budget_store="memory://")
print(r2.complete(MSGS).choices[0].message.content)                  # a second Router's loop
print(r1.complete(MSGS).choices[0].message.content)
r1.close()
print(asyncio.run(r2.acomplete(MSGS)).choices[0].message.content)
r2.close()
import gc; gc.collect()
"""


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONWARNINGS": "default"}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=480)


def test_mixing_routers_and_loops_through_litellm_leaves_no_pending_task(fake_provider):
    fake_provider.script("*", answer("Paris."))
    out = run(MIXED_LOOPS, provider_env(fake_provider.url))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["Paris."] * 5, out.stderr[-3000:]
    assert "Task was destroyed" not in out.stderr and "was never awaited" not in out.stderr, out.stderr[-3000:]
    assert "LoggingWorker" not in out.stderr, out.stderr[-3000:]
    assert len(fake_provider.tally.requests) >= 5          # a slow machine may retry or escalate a call


HOME_SCRIPT = PRELUDE + """
import logging
logging.basicConfig(level=logging.WARNING, format="LOG %(name)s %(levelname)s %(message)s")
home = os.path.expanduser("~")
def listing():
    return sorted(os.path.relpath(os.path.join(d, f), home) for d, _, fs in os.walk(home) for f in fs)
r = Router("default", env=ENV)
r.route(MSGS)
print("BEFORE", listing())
sys.stdout.flush()
r.complete(MSGS)
r.close()
print("AFTER", listing())
"""


def test_nothing_is_written_in_home_until_needed_and_then_it_is_said(fake_provider, tmp_path):
    fake_provider.script("*", answer("Paris."))
    home = tmp_path / "home"
    home.mkdir()
    env = {**provider_env(fake_provider.url), "HOME": str(home)}
    clean = {k: v for k, v in os.environ.items() if k not in ("CASCADE_SPOOL_DIR", "CASCADE_BUDGET_STORE")}
    full = {**clean, **env, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run([sys.executable, "-c", HOME_SCRIPT], cwd=ROOT, env=full, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "BEFORE []"                       # built and planned: nothing on disk
    after = eval(lines[1].removeprefix("AFTER "))        # the repr of a list of str
    assert ".cascade/spend.db" in after and all(p.startswith(".cascade/spend.db") for p in after), after
    db = home / ".cascade" / "spend.db"
    said = [line for line in out.stderr.splitlines() if line.startswith("LOG cascade.disk WARNING")]
    assert said == [f"LOG cascade.disk WARNING cascade created the budget ledger at {db} (set "
                    "CASCADE_BUDGET_STORE or budget_store= to keep it elsewhere)"]


@pytest.mark.parametrize("inside_home, level", [(True, "WARNING"), (False, "INFO")])
def test_announce_created_is_louder_in_home(tmp_path, monkeypatch, caplog, inside_home, level):
    import logging

    from cascade.disk import announce_created
    monkeypatch.setenv("HOME", str(tmp_path))
    path = (tmp_path / ".cascade" / "x.db") if inside_home else Path("/var/tmp/cascade-x.db")
    with caplog.at_level(logging.INFO, logger="cascade.disk"):
        announce_created(path, "a thing", "move it with X")
    [record] = caplog.records
    assert record.levelname == level and str(path) in record.getMessage()


def test_close_returns_once_the_background_loop_is_closed(fake_provider):
    """A loop close() stopped is closed when close() returns: a library that hands a session's close to
    that loop from another thread (litellm does, for a client it recycles) sees it closed and disposes of
    the session in place, instead of starting a task on a loop about to end."""
    from cascade.router import Router
    fake_provider.script("*", answer("Paris."))
    r = Router("default", env=provider_env(fake_provider.url), budget_store="memory://")
    assert r.complete([{"role": "user", "content": "What is the capital of France?"}]).choices[0].message.content
    loop = r._loop
    r.close()
    assert loop.is_closed()


def test_work_handed_to_a_stopping_loop_ends_there_before_it_closes():
    """A coroutine handed to the background loop just as it stops starts, is cancelled and awaited, with
    the task it started: nothing is destroyed pending when the loop closes."""
    import asyncio
    import gc
    import threading
    import warnings

    from cascade.loops import run_forever_then_close
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=run_forever_then_close, args=(loop,))
    thread.start()
    ended: list[str] = []

    async def inner() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append("inner")

    async def close_session() -> None:          # like a session close: it starts a task and awaits it
        try:
            await asyncio.ensure_future(inner())
        finally:
            ended.append("outer")

    def stop_then_hand_over() -> None:
        loop.stop()
        asyncio.run_coroutine_threadsafe(close_session(), loop)

    destroyed: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: destroyed.append(context))
    loop.call_soon_threadsafe(stop_then_hand_over)
    thread.join(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gc.collect()
    assert loop.is_closed() and not thread.is_alive()
    assert sorted(ended) == ["inner", "outer"] and destroyed == []
