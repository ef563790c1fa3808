"""No API key leaks: recognisable canary keys for every provider variable, a mix of requests that fail in
the ways that tend to leak (401 / 400 / 403 / 429 / 500 bodies that ECHO the key back, timeouts, malformed
bodies), and then a grep for the keys over everything a user or an operator gets to see:

* the trace file (written with ``trace_text=True``);
* every log record of every logger (litellm's included) at DEBUG, with ``litellm.set_verbose``, and
  everything printed to stdout / stderr;
* every exception raised to the caller: ``str`` / ``repr`` / ``args`` of it and of every exception of its
  ``__cause__`` / ``__context__`` chain, the formatted traceback, the attempts and trace it carries;
* the responses and their ``.cascade`` traces;
* ``cascade validate`` (good files and files with key-bearing mistakes), ``cascade route --json`` and
  ``cascade replay --traces`` over the trace file written above.

The keys share a random 24-hex core; a hit is the whole key or that core (a masked key such as
``Be****ab`` is fine). Two of the keys do not look like keys (no ``sk-``), so redaction cannot lean on
the key pattern alone. Also: the shipped classifier artifacts load without pickle.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from cascade.router import Router
from cascade.trace import read_traces
from policies.errors import CascadeError
from policies.loader import parse_policy
from tests.cascade.router.conftest import FixedScore, Sleeps
from tests.harness.fake_provider import ModelScript, answer, http_error, malformed, timeout

ROOT = Path(__file__).resolve().parents[2]
CORE = secrets.token_hex(12)
KEYS = {"DEEPSEEK_API_KEY": f"sk-live-CANARY-deepseek-{CORE}Aa",
        "OPENAI_API_KEY": f"sk-live-CANARY-openai-{CORE}Bb",
        "DEEPSEEK_VL2_API_KEY": f"live_CANARY_vl2_{CORE}Cc",        # not key-shaped
        "DEEPSEEK_OCR_API_KEY": f"CANARY.ocr.{CORE}.Dd"}            # not key-shaped
NEEDLES = (*KEYS.values(), CORE)
BASES = ("DEEPSEEK_API_BASE", "OPENAI_API_BASE", "DEEPSEEK_VL2_API_BASE", "DEEPSEEK_OCR_API_BASE")
DS, OA, VL = KEYS["DEEPSEEK_API_KEY"], KEYS["OPENAI_API_KEY"], KEYS["DEEPSEEK_VL2_API_KEY"]

POLICY = """
name: secrets
extends: default
routing: {classifier: heuristic}
escalation: {on_exhausted: raise}
retries:
  rate_limit: {attempts: 2, backoff: {initial_s: 0.01, jitter_s: 0}}
  server_error: {attempts: 2, backoff: {initial_s: 0.01, jitter_s: 0}}
  connection: {attempts: 2, backoff: {initial_s: 0.01, jitter_s: 0}}
  timeout: {attempts: 2, backoff: {initial_s: 0.01, jitter_s: 0}}
  attempt_timeout_s: 0.5
  deadline_s: 20
budgets: {store: "memory://"}
circuit_breaker: {failures: 100, cooldown_s: 1}
"""


def hits(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


def echo(status: int, key: str, *, text: bool = False, retry_after: float | None = None) -> Any:
    """An error whose body echoes the key back, as some providers do."""
    if text:
        return http_error(status, f"upstream rejected Authorization: Bearer {key} (status {status})", retry_after)
    return http_error(status, {"error": {"message": f"Incorrect API key provided: {key}. Find your key at ...",
                                         "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
                      retry_after)


# ── fixtures ────────────────────────────────────────────────────────────────────────────────

@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, fake_provider: Any) -> Any:
    for var, key in KEYS.items():
        monkeypatch.setenv(var, key)
    for var in BASES:
        monkeypatch.setenv(var, fake_provider.url)
    return fake_provider


class Grab(logging.Handler):
    """Keeps everything a log handler could write: message, args, extras, formatted exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record whose args do not fit its format
            message = f"{record.msg!r} % {record.args!r}"
        parts = [message, repr(record.args), repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")})]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        self.texts.append("\n".join(parts))


@pytest.fixture
def debug_logs() -> Iterator[Grab]:
    """Every logger at DEBUG into one handler (non-propagating loggers get it too), litellm verbose."""
    from cascade.providers import load_litellm
    litellm = load_litellm()
    grab = Grab()
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is logging.getLogger() or not lg.propagate:
            lg.addHandler(grab)
    verbose = getattr(litellm, "set_verbose", False)
    litellm.set_verbose = True
    try:
        yield grab
    finally:
        litellm.set_verbose = verbose
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            lg.removeHandler(grab)


def chain_of(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in out) and len(out) < 20:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def exception_texts(exc: BaseException) -> list[str]:
    """str / repr / args of the exception and of its whole chain, the traceback, what it carries."""
    texts = ["".join(traceback.format_exception(exc))]
    for e in chain_of(exc):
        texts += [str(e), repr(e), repr(e.args), repr(getattr(e, "message", ""))]
    for record in getattr(exc, "attempts", None) or ():
        texts.append(json.dumps(record.to_dict(), default=str))
    trace = getattr(exc, "trace", None)
    if trace is not None:
        texts.append(json.dumps(trace.to_dict(), default=str))
    return texts


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cascade.cli", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=180)


# ── the grep ────────────────────────────────────────────────────────────────────────────────

async def _run_requests(router: Router, fake: Any) -> tuple[list[Any], list[BaseException]]:
    """Requests that fail in the ways that tend to leak; returns the responses and the exceptions."""
    scenarios = [
        # (deepseek-chat behaviours, gpt-4o behaviours, kwargs)
        ([echo(401, DS)], [echo(401, OA)], {}),                                 # both reject the key: raise
        ([echo(500, DS, text=True)] * 2, [answer("fine")], {}),                 # 5xx echo, then fallback
        ([timeout(5)] * 2, [malformed(), malformed()], {}),                     # timeouts, malformed: raise
        ([echo(429, DS, retry_after=0.01), answer("ok after 429")], [], {}),    # 429 echo, retried
        ([echo(400, DS)], [echo(403, OA)], {}),                                 # 400 / 403 echo: raise
        ([echo(401, DS)], [answer("streamed")], {"stream": True}),              # buffered stream
        ([echo(401, DS, text=True)], [echo(500, OA)] * 2, {"stream": True}),    # stream, all fail
    ]
    responses, errors = [], []
    # one plain request first: litellm's first call on a cold process can stall longer than this
    # policy's 0.5 s attempt timeout, which would turn the first scenario into a retry
    fake.script("deepseek-chat", ModelScript(default=answer("warm")))
    await router.acomplete([{"role": "user", "content": "What is 1+1?"}])
    for ds_queue, oa_queue, kwargs in scenarios:
        fake.script("deepseek-chat", ModelScript(default=answer("late"), queue=list(ds_queue)))
        fake.script("gpt-4o", ModelScript(default=answer("late"), queue=list(oa_queue)))
        try:
            resp = await router.acomplete([{"role": "user", "content": "Name a primary colour."}], user="carol", **kwargs)
            if kwargs.get("stream"):
                resp = [chunk async for chunk in resp] and resp
            responses.append(resp)
        except CascadeError as exc:
            errors.append(exc)
    # a vision request: the non key-shaped VL2 key echoed back
    fake.script("deepseek-vl2", ModelScript(queue=[echo(401, VL), echo(500, VL, text=True)]))
    fake.script("gpt-4o", ModelScript(queue=[echo(401, OA)]))
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    try:
        await router.acomplete([{"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}])
    except CascadeError as exc:
        errors.append(exc)
    # the provider layer directly: its exceptions keep their chained originals
    from cascade.providers import acall, call
    fake.script("deepseek-chat", ModelScript(queue=[echo(401, DS), echo(500, DS)]))
    for key in (DS, DS):
        try:
            await acall(litellm_model="deepseek/deepseek-chat", messages=[{"role": "user", "content": "hi"}],
                        api_base=fake.url, api_key=key, timeout_s=5, params={}, model_alias="deepseek-v2")
        except CascadeError as exc:
            errors.append(exc)
    fake.script("gpt-4o", ModelScript(queue=[echo(401, OA, text=True)]))
    try:
        call(litellm_model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}], api_base=fake.url,
             api_key=OA, timeout_s=5, params={}, model_alias="gpt-4o")
    except CascadeError as exc:
        errors.append(exc)
    return responses, errors


@pytest.mark.parametrize("transport", [None, "direct"])
async def test_no_key_in_traces_logs_errors_or_responses(secret_env, debug_logs, capfd, tmp_path, transport):
    fake = secret_env
    trace_path = tmp_path / "traces.jsonl"
    router = Router(parse_policy(POLICY, source="secrets.yaml"), classifier=FixedScore(0.1), trace_path=trace_path,
                    trace_text=True, sleep=Sleeps(), budget_store="memory://", transport=transport)
    try:
        responses, errors = await _run_requests(router, fake)
    finally:
        await router.aclose()
    assert len(errors) >= 8 and len(responses) >= 3, (len(errors), len(responses))
    auth = {r.authorization for r in fake.tally.requests if r.authorization}
    assert f"Bearer {DS}" in auth and f"Bearer {VL}" in auth, "the keys did reach the provider"
    assert not any(hits(r.raw_body.decode("utf-8", "replace")) for r in fake.tally.requests), "a key in a request body"

    found: dict[str, list[str]] = {}
    raw_traces = trace_path.read_text(encoding="utf-8")
    assert len(read_traces(trace_path)) >= 8
    found["trace file"] = hits(raw_traces)
    for i, exc in enumerate(errors):
        found[f"error {i} {type(exc).__name__}"] = sorted({h for t in exception_texts(exc) for h in hits(t)})
    for i, resp in enumerate(responses):
        found[f"response {i}"] = hits(json.dumps(resp.cascade.to_dict(), default=str)) + hits(repr(resp))
    found["log records"] = sorted({h for t in debug_logs.texts for h in hits(t)})
    printed = capfd.readouterr()
    found["stdout/stderr"] = hits(printed.out) + hits(printed.err)
    assert debug_logs.texts, "no log record was captured: the DEBUG capture is broken"
    assert {k: v for k, v in found.items() if v} == {}

    # the trace file replays without leaking either (when this build has `cascade replay`)
    env = dict(os.environ)
    out = cli("replay", "--traces", str(trace_path), "--json", "--quiet", env=env)
    if "No such command" not in out.stderr:
        assert hits(out.stdout + out.stderr) == [], "cascade replay printed a key"


def _policy_file(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_no_key_in_cli_output(secret_env, tmp_path):
    env = dict(os.environ)
    good = _policy_file(tmp_path, "good.yaml", "extends: default\nname: good\ndescription: ${OPENAI_API_KEY}\n")
    mistakes = [
        # a key pasted where the variable name belongs
        f"extends: default\nname: m1\ncatalog:\n  gpt-4o:\n    api_key_env: {OA}\n",
        # a key pasted into a field that does not exist
        f"extends: default\nname: m2\ncatalog:\n  gpt-4o:\n    api_key: {OA}\n",
        # interpolated keys in fields that then fail validation
        "extends: default\nname: m3\nrouting: {thresholds: ['${OPENAI_API_KEY}']}\nbudgets: {at_cap: '${DEEPSEEK_API_KEY}'}\n",
        f"extends: default\nname: m4\nescalation: {{on_exhausted: {DS}}}\n",
        # a YAML syntax error on the line holding a key
        f"extends: default\nname: [{OA}\n",
        "extends: default\nname: m6\nbudgets: {store: 'redis://:${OPENAI_API_KEY}@localhost:1/0', per_request_usd: -1}\n",
    ]
    files = [_policy_file(tmp_path, f"bad{i}.yaml", text) for i, text in enumerate(mistakes)]
    outputs = {}
    ok = cli("validate", "default", str(good), env=env)
    assert ok.returncode == 0, ok.stderr
    outputs["validate good"] = ok.stdout + ok.stderr
    for path in files:
        bad = cli("validate", str(path), env=env)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        outputs[f"validate {path.name}"] = bad.stdout + bad.stderr
    route = cli("route", "Prove that sqrt(2) is irrational", "--json", "--policy", str(good), env=env)
    assert route.returncode == 0, route.stderr
    json.loads(route.stdout)
    outputs["route --json"] = route.stdout + route.stderr
    route_bad = cli("route", "hi", "--json", "--policy", str(files[0]), env=env)
    outputs["route --json (bad policy)"] = route_bad.stdout + route_bad.stderr
    assert {name: hits(text) for name, text in outputs.items() if hits(text)} == {}


async def test_no_key_in_string_attributes_of_chained_exceptions(secret_env):
    from cascade.providers import acall
    fake = secret_env
    leaks = []
    for model, litellm_model, key in (("deepseek-chat", "deepseek/deepseek-chat", DS), ("gpt-4o", "openai/gpt-4o", OA)):
        fake.script(model, ModelScript(queue=[echo(401, key)]))
        try:
            await acall(litellm_model=litellm_model, messages=[{"role": "user", "content": "hi"}], api_base=fake.url,
                        api_key=key, timeout_s=5, params={}, model_alias=model)
        except CascadeError as exc:
            for e in chain_of(exc):
                for name, value in vars(e).items():
                    if isinstance(value, (str, dict, list, tuple)) and hits(json.dumps(value, default=str)):
                        leaks.append(f"{type(e).__name__}.{name}")
    assert leaks == []


# ── artifacts: no pickle ────────────────────────────────────────────────────────────────────

ARTIFACTS = ROOT / "classifiers" / "artifacts"


def test_classifier_artifacts_load_without_pickle():
    files = sorted(p for p in ARTIFACTS.glob("*") if p.is_file()) if ARTIFACTS.is_dir() else []
    if not files:
        pytest.skip(f"no classifier artifacts shipped yet ({ARTIFACTS})")
    allowed = {".npz", ".json", ".md"}
    assert [p.name for p in files if p.suffix not in allowed] == []
    pickled = [p.name for p in (ROOT / "classifiers").rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]
    assert pickled == []
    for path in files:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                for name in npz.files:
                    assert npz[name].dtype != object, f"{path.name}:{name} holds Python objects"
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
    for stem in {p.stem for p in files if p.suffix == ".json"}:
        if (ARTIFACTS / f"{stem}.npz").exists():
            from classifiers.artifact import read_artifact
            meta, arrays = read_artifact(ARTIFACTS / f"{stem}.json")
            assert meta["kind"] in ("classifier", "answer_checker") and arrays
