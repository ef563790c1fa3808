"""A scripted, local, OpenAI-compatible HTTP provider for tests and benchmarks.

litellm reaches it over real HTTP exactly as it reaches a provider (``api_base=server.url``)::

    server = FakeProvider().start()          # background thread with its own event loop
    server.script("deepseek-chat", ModelScript(default=answer("Paris"), queue=[rate_limited(2)]))
    ... litellm.completion(model="openai/deepseek-chat", api_base=server.url, api_key="sk-x", ...)
    server.tally["deepseek-chat"].completion_tokens
    server.reset(); server.stop()

Or as a subprocess (multi-process tests, benchmarks)::

    python -m tests.harness.fake_provider --port 0 --script script.json
    # prints "READY http://127.0.0.1:PORT/v1"; see FakeProviderProcess

Routes: ``POST /v1/chat/completions`` and ``POST /chat/completions`` (litellm's openai provider
uses the first with ``api_base=.../v1``; its deepseek provider appends ``/chat/completions`` to
``DEEPSEEK_API_BASE``), ``POST /v1/embeddings`` (deterministic hashed bag-of-words vectors, see
:mod:`tests.harness.embeddings`; a scripted ``http_error`` of the model is answered too, and a scripted
``latency`` delays the answer), ``GET /v1/models``. Control routes (used by the subprocess client):
``GET /_fake/tally[?full=1]``, ``POST /_fake/reset``, ``POST /_fake/script`` (body: a script file).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from .processes import stop_process
from .scripts import (Behaviour, ModelScript, answer, behaviour_from_json,
                      context_length_exceeded, drop, empty, http_error, malformed, message_text, rate_limited,
                      script_from_json, scripts_from_json, timeout, truncated, wrong_format)
from .embeddings import embeddings_payload
from .sse import completion_body, stream_completion
from .tally import Tally

__all__ = ["FakeProvider", "FakeProviderProcess", "ModelScript", "Behaviour", "Tally", "answer",
           "truncated", "empty", "wrong_format", "http_error", "rate_limited",
           "context_length_exceeded", "timeout", "drop", "malformed", "behaviour_from_json",
           "script_from_json", "scripts_from_json"]

MALFORMED_BODY = '{"id": "chatcmpl-bad", "object": "chat.completion", "choices": [{"message": {"cont'
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error"}


class FakeProvider:
    """The server. ``start()`` runs it in a daemon thread; ``serve()`` runs it in the current loop."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 4096) -> None:
        self.host, self.port, self.backlog = host, port, backlog
        self.tally = Tally()
        self._scripts: dict[str, ModelScript] = {}
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # ── public API ──────────────────────────────────────────────────────────────────────────
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-style ``api_base`` (ends in ``/v1``)."""
        return f"{self.base_url}/v1"

    def script(self, model: str, script: ModelScript | Behaviour | None = None, **kw: Any) -> ModelScript:
        """Script ``model`` (``"*"``: every model not scripted). A bare Behaviour becomes the default."""
        if isinstance(script, Behaviour):
            script = ModelScript(default=script, **kw)
        elif script is None:
            script = ModelScript(**kw)
        self._scripts[model] = script
        return script

    def load_scripts(self, data: Mapping[str, Any]) -> None:
        self._scripts.update(scripts_from_json(data))

    def script_for(self, model: str) -> ModelScript:
        script = self._scripts.get(model) or self._scripts.get("*")
        if script is None:
            script = self._scripts.setdefault("*", ModelScript())
        return script

    def reset(self) -> None:
        """Forget every script and the tally."""
        self._scripts.clear()
        self.tally.clear()

    # ── lifecycle ───────────────────────────────────────────────────────────────────────────
    def start(self) -> "FakeProvider":
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run_thread, args=(ready, errors),
                                        name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.aclose(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run_thread(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self.astart())
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            errors.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    async def astart(self) -> "FakeProvider":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ("/v1/chat/completions", "/chat/completions"):
            app.router.add_post(path, self._chat)
        for path in ("/v1/embeddings", "/embeddings"):
            app.router.add_post(path, self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/_fake/tally", self._control_tally)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/script", self._control_script)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=self.backlog,
                           reuse_address=True)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ── handlers ────────────────────────────────────────────────────────────────────────────
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            self.tally.record_request(model="?", path=request.path, headers=dict(request.headers),
                                      raw_body=raw, body=None, outcome="bad_request", stream=False)
            return _error_response(400, "request body is not a chat completion request")
        script = self.script_for(model)
        behaviour = script.next_behaviour()
        stream = bool(body.get("stream"))
        seq = self.tally.record_request(
            model=model, path=request.path, headers={k.lower(): v for k, v in request.headers.items()},
            raw_body=raw, body=body, outcome=_outcome(behaviour), stream=stream)
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        delay = script.draw_latency(behaviour.latency, message_text(users[-1]) if users else "")
        if delay > 0:
            await asyncio.sleep(delay)
        return await self._respond(request, behaviour, body, model, seq, stream)

    async def _respond(self, request: web.Request, behaviour: Behaviour, body: dict, model: str,
                       seq: int, stream: bool) -> web.StreamResponse:
        kind = behaviour.kind
        if kind == "timeout":
            await asyncio.sleep(behaviour.sleep_s)
            return _error_response(504, "fake provider timeout elapsed")
        if kind == "drop" or (behaviour.drop_after_chunks is not None and not stream):
            return _drop(request)
        if kind == "http_error":
            return _error_response(behaviour.status, None, behaviour.body, behaviour.retry_after)
        if kind == "malformed":
            if stream:  # an SSE stream whose first event is not JSON
                return web.Response(status=200, content_type="text/event-stream",
                                    text=f"data: {MALFORMED_BODY}\n\ndata: [DONE]\n\n")
            return web.Response(status=200, content_type="application/json", text=MALFORMED_BODY)
        if stream:
            return await stream_completion(request, behaviour, body, model, seq, self.tally)
        payload, record = completion_body(behaviour, body, model, seq)
        # Booked before the bytes leave, so a client never sees an answer the tally lacks;
        # withdrawn if the write fails (the client left).
        self.tally.record_completion(record)
        response = web.json_response(payload)
        try:
            await response.prepare(request)
            await response.write_eof()
        except ConnectionError:
            self.tally.withdraw_completion(seq)
        except BaseException:
            self.tally.withdraw_completion(seq)
            raise
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
            model = str(body["model"])
        except (ValueError, KeyError, TypeError):
            return _error_response(400, "request body is not an embeddings request")
        script = self.script_for(model)
        behaviour = script.next_behaviour()
        self.tally.record_request(model=model, path=request.path, headers={k.lower(): v for k, v in request.headers.items()},
                                  raw_body=raw, body=body, outcome=_outcome(behaviour), stream=False)
        delay = script.draw_latency(behaviour.latency, str(body.get("input", "")))
        if delay > 0:
            await asyncio.sleep(delay)
        if behaviour.kind == "http_error":
            return _error_response(behaviour.status, None, behaviour.body, behaviour.retry_after)
        return web.json_response(embeddings_payload(body))

    async def _models(self, request: web.Request) -> web.Response:
        names = sorted(m for m in self._scripts if m != "*") or ["deepseek-chat"]
        return web.json_response({"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "fake-provider"} for n in names]})

    async def _control_tally(self, request: web.Request) -> web.Response:
        full = request.query.get("full") in ("1", "true")
        return web.json_response(self.tally.to_dict(full=full))

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            self.load_scripts(await request.json())
        except (ValueError, TypeError) as exc:
            return _error_response(400, f"bad script: {exc}")
        return web.json_response({"ok": True})


def _outcome(behaviour: Behaviour) -> str:
    if behaviour.kind == "http_error":
        return f"http_error:{behaviour.status}"
    return behaviour.kind


def _error_response(status: int, message: str | None, body: Any = None,
                    retry_after: float | str | None = None) -> web.Response:
    headers = {} if retry_after is None else {"Retry-After": _fmt_retry_after(retry_after)}
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers, content_type="text/plain")
    if body is None:
        body = {"error": {"message": message or f"fake provider error {status}",
                          "type": ERROR_TYPES.get(status, "server_error"), "param": None,
                          "code": str(status)}}
    return web.json_response(body, status=status, headers=headers)


def _fmt_retry_after(value: float | str) -> str:
    if isinstance(value, (int, float)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _drop(request: web.Request) -> web.StreamResponse:
    """Reset the TCP connection without writing a status line (aiohttp then ignores the response)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=599)


# ── subprocess mode ─────────────────────────────────────────────────────────────────────────

class FakeProviderProcess:
    """Runs ``python -m tests.harness.fake_provider`` as a child process; same script/tally API
    over the control routes (the tally comes back as the JSON of :meth:`Tally.to_dict`)."""

    def __init__(self, script: Mapping[str, Any] | str | Path | None = None, *, port: int = 0,
                 host: str = "127.0.0.1", python: str = sys.executable) -> None:
        self.script_arg, self.port, self.host, self.python = script, port, host, python
        self.proc: subprocess.Popen[str] | None = None
        self._tmp: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 30.0) -> "FakeProviderProcess":
        cmd = [self.python, "-m", "tests.harness.fake_provider", "--host", self.host,
               "--port", str(self.port)]
        if self.script_arg is not None:
            cmd += ["--script", str(self._script_path())]
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"fake provider subprocess did not start: {line!r}")
        self.port = int(line.split()[1].rsplit(":", 1)[1].split("/")[0])
        return self

    def _script_path(self) -> Path:
        if isinstance(self.script_arg, (str, Path)):
            return Path(self.script_arg)
        import tempfile
        fd, name = tempfile.mkstemp(prefix="fake-provider-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.script_arg, fh)
        self._tmp = Path(name)
        return self._tmp

    def _control(self, method: str, path: str, payload: Any = None) -> Any:
        import httpx
        resp = httpx.request(method, f"http://{self.host}:{self.port}{path}", json=payload, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def tally(self, *, full: bool = False) -> dict[str, Any]:
        return self._control("GET", "/_fake/tally" + ("?full=1" if full else ""))

    def load_scripts(self, data: Mapping[str, Any]) -> None:
        self._control("POST", "/_fake/script", dict(data))

    def reset(self) -> None:
        self._control("POST", "/_fake/reset")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "FakeProviderProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def _serve_forever(server: FakeProvider) -> None:
    await server.astart()
    print(f"READY {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.fake_provider",
                                     description="Scripted local OpenAI-compatible provider.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--script", type=Path, help='JSON: {"models": {NAME: ModelScript}, "fallback": ...}')
    args = parser.parse_args(argv)
    server = FakeProvider(args.host, args.port)
    if args.script is not None:
        server.load_scripts(json.loads(args.script.read_text()))
    asyncio.run(_serve_forever(server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
