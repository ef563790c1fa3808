"""The OpenAI-compatible HTTP server: ``create_app(settings | router_factory) -> FastAPI``.

    POST /v1/chat/completions   OpenAI request/response; ``stream: true`` answers with SSE
    GET  /v1/models             ``cascade``, ``cascade/<policy name>`` and ``cascade/<built-in policy>``
    POST /v1/feedback           {request_id, score}: a user labels their own request (:mod:`cascade.server.feedback`)
    GET  /healthz               200 {"status": "ok" | "degraded", store, breakers, ladders, spool} (503 if the
                                store is unreachable; see :mod:`cascade.server.healthz`)
    GET  /metrics               Prometheus text (the app's own CollectorRegistry)
    GET  /openapi.json          the OpenAPI 3.1 document of these routes (built once, kept as bytes)
    GET  /dashboard             live spend, caps, routing, errors and latency (see :mod:`cascade.server.dashboard`)

``model`` must be ``cascade``, ``cascade/<policy name>`` or ``cascade/<built-in policy>`` (else 404
``model_not_found``; the built-ins share the server's store, caps, breakers and trace sink: see
:mod:`cascade.server.routers`). A trailing slash on any path is ignored. The answer's
``model`` is ``cascade/<alias>`` of the model that answered, its ``id`` is ``chatcmpl-<trace request_id>``,
and the RouteTrace rides along as the ``cascade`` field (the last SSE chunk for streams) and, compact, in
the ``x-cascade-trace`` header (see :mod:`cascade.server.wire`). The user charged for the request is the
API key's principal (its user, team, org and key label: budgets at every level) when the app has
keys, else the body's ``user``.

One Router per app, made in the lifespan (so one per process under uvicorn) and closed at shutdown.
``/v1/*`` needs ``Authorization: Bearer <key>`` when the app has keys (see :mod:`cascade.server.auth`);
``/healthz``, ``/metrics`` and ``/openapi.json`` never do. Errors are OpenAI-shaped (see
:mod:`cascade.server.errors`); every malformed body is a 4xx (see :mod:`cascade.server.body`).

Hostile input and slow clients: the body is bounded (``max_body_bytes``, 413), the prompt too
(``max_prompt_chars``, 413 before any tokenizing; long prompts are planned off the event loop by the
Router); a client that disconnects cancels its request (:mod:`cascade.server.disconnect`); a stream
whose first chunk takes longer than ``sse_keepalive_s`` (a checked answer is held whole until it
passed) starts with SSE keep-alive comments instead of silence (its headers then carry no
``x-cascade-trace``: the trace rides in the last chunk, as always).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from policies.budget import Principal
from policies.errors import BudgetExceeded, CascadeError, EscalationExhausted

from cascade.server.auth import KeyRing, load_keys
from cascade.server.body import parse_json, read_body
from cascade.server.dashboard import add_dashboard_routes
from cascade.server.disconnect import ClientDisconnected, until_disconnect
from cascade.server.errors import ApiError, error_json, error_reply
from cascade.server.feedback import feedback_route
from cascade.server.healthz import health_report
from cascade.server.metrics import CONTENT_TYPE_LATEST, ServerMetrics
from cascade.server.schemas import ChatCompletionRequest, router_params
from cascade.server.streaming import SSEResponse, SSEStream, open_first_chunk
from cascade.server.wire import TRACE_HEADER, completion_body, trace_header

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServerSettings", "create_app"]

log = logging.getLogger("cascade.server")
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_SSE_KEEPALIVE_S = 5.0
_JSON = "application/json"
SESSION_HEADER = "x-session-id"       # a session's later turns start at the model of its last turn (cascade.sessions)


@dataclass(frozen=True)
class ServerSettings:
    """What ``cascade serve`` is started with; :meth:`make_router` builds the process's Router."""

    policy: str = "default"
    budget_store: str | None = None
    keys_file: str | None = None
    global_cap_usd: float | None = None
    user_cap_usd: float | None = None
    cap_window: str = "total"
    team_cap_usd: float | None = None
    org_cap_usd: float | None = None
    key_cap_usd: float | None = None
    trace_path: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    transport: str | None = None
    max_prompt_chars: int | None = None      # None: the Router's default (cascade.planning)
    sse_keepalive_s: float = DEFAULT_SSE_KEEPALIVE_S
    spool_dir: str | None = None
    otel: bool = False                       # OpenTelemetry spans and metrics, whatever the policy says

    def make_router(self) -> Any:
        from cascade.router import Router
        return Router(self.policy, budget_store=self.budget_store, trace_path=self.trace_path,
                      global_cap_usd=self.global_cap_usd, user_cap_usd=self.user_cap_usd,
                      cap_window=self.cap_window, team_cap_usd=self.team_cap_usd, org_cap_usd=self.org_cap_usd,
                      key_cap_usd=self.key_cap_usd, transport=self.transport, spool_dir=self.spool_dir,
                      max_prompt_chars=self.max_prompt_chars, opentelemetry=True if self.otel else None)


class ServerState:
    """Everything a request handler needs, bound once (the Router at start-up)."""

    def __init__(self, keys: KeyRing | None, max_body_bytes: int, metrics: ServerMetrics,
                 sse_keepalive_s: float = DEFAULT_SSE_KEEPALIVE_S) -> None:
        self.keys, self.max_body_bytes, self.metrics = keys, max_body_bytes, metrics
        self.sse_keepalive_s = sse_keepalive_s
        self.router: Any = None
        self.routers: Any = None
        self.model_ids: tuple[str, ...] = ("cascade",)
        self._openapi: bytes | None = None

    def openapi(self) -> bytes:
        if self._openapi is None:
            from importlib.metadata import PackageNotFoundError, version

            from cascade.server.openapi import openapi_document
            try:
                release = version("deepseek-cascade")
            except PackageNotFoundError:
                release = "0"
            self._openapi = openapi_document(self.model_ids, with_keys=self.keys is not None, version=release)
        return self._openapi

    def bind(self, router: Any) -> None:
        from cascade.server.routers import PolicyRouters
        self.router = router
        self.routers = PolicyRouters(router)
        self.model_ids = self.routers.model_ids

    def authenticate(self, request: Request) -> Principal | None:
        """The key's principal: user, team, org, key label (None when the app has no keys); ApiError 401
        for a missing or wrong key."""
        if self.keys is None:
            return None
        authorization = request.headers.get("authorization")
        user = self.keys.principal_for(authorization)
        if user is None:
            message = ("Incorrect API key provided." if authorization else
                       "You didn't provide an API key: send it as 'Authorization: Bearer <key>'.")
            raise ApiError(401, message, code="invalid_api_key", outcome="unauthorized",
                           headers={"WWW-Authenticate": "Bearer"})
        return user


SETTINGS_ENV = "CASCADE_SERVE_SETTINGS"


def app_from_env() -> FastAPI:
    """The app of one ``cascade serve --workers N`` worker: the settings the parent process validated,
    passed as JSON in ``CASCADE_SERVE_SETTINGS`` (uvicorn imports this factory in every worker)."""
    return create_app(ServerSettings(**json.loads(os.environ[SETTINGS_ENV])))


def create_app(config: ServerSettings | Callable[[], Any] | None = None, *,
               keys: KeyRing | Mapping[str, str] | None = None, max_body_bytes: int | None = None,
               warm_up: bool = True, sse_keepalive_s: float | None = None) -> FastAPI:
    """The ASGI app. ``config``: ServerSettings, or a zero-argument factory returning a Router (tests
    pass one wired to their fake provider). ``keys`` (a KeyRing or key → user mapping) overrides the
    settings' keys file. ``warm_up`` imports litellm at start-up rather than on the first request.
    ``max_body_bytes`` / ``sse_keepalive_s`` override the settings'."""
    settings = config if isinstance(config, ServerSettings) else ServerSettings()
    factory: Callable[[], Any] = config if callable(config) and not isinstance(config, ServerSettings) \
        else settings.make_router
    if keys is not None and not isinstance(keys, KeyRing):
        keys = KeyRing(keys)
    if keys is None and settings.keys_file is not None:
        keys = load_keys(settings.keys_file)
    limit = settings.max_body_bytes if max_body_bytes is None else max_body_bytes
    keepalive = settings.sse_keepalive_s if sse_keepalive_s is None else sse_keepalive_s
    state = ServerState(keys, int(limit), ServerMetrics(), float(keepalive))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        router = factory()
        state.bind(router)
        state.metrics.watch(router.health, router.policy.catalog)    # circuit states and transitions
        await router.astart()            # spend an earlier run could not record: applied to the store
        if warm_up:
            await router.services.warm_up(streaming=True)   # litellm's import, when a transport may need it
        try:
            yield
        finally:
            await state.routers.aclose()   # no reservation left held, late answers recorded, sessions and store closed

    app = CascadeApp(title="deepseek-cascade", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cascade = state
    app.chat_handler = _add_routes(app, state)
    add_dashboard_routes(app, state)
    _add_error_handlers(app)
    return app


class CascadeApp(FastAPI):
    """FastAPI, with ``POST /v1/chat/completions`` served straight from the ASGI call: its handler
    authenticates, limits the body and turns every failure into an OpenAI-style error itself, so the
    middleware stack and the router's matching (about a tenth of the server's CPU per request) are
    skipped on the one hot route. Everything else goes through FastAPI as usual."""

    chat_handler: Callable[[Request], Awaitable[Response]] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = _without_trailing_slash(scope)      # /v1/chat/completions/ is /v1/chat/completions (no 307)
        if (scope["type"] == "http" and scope["method"] == "POST" and self.chat_handler is not None
                and scope["path"] == "/v1/chat/completions"):
            scope["app"] = self
            try:
                response = await self.chat_handler(Request(scope, receive, send))
            except asyncio.CancelledError:    # shutting down past --graceful-timeout: a typed 503, not a 500
                response = _error_response(ApiError(
                    503, "the server is shutting down; retry the request", type="server_error",
                    code="server_shutting_down", outcome="shutting_down", headers={"Retry-After": "1"}))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _without_trailing_slash(scope: Any) -> Any:
    path = scope["path"].rstrip("/") or "/"
    raw = scope.get("raw_path")
    return {**scope, "path": path, **({"raw_path": raw.rstrip(b"/") or b"/"} if raw else {})}


def _error_response(exc: BaseException) -> Response:
    reply = error_reply(exc)
    return Response(reply.content(), status_code=reply.status, headers=reply.headers, media_type=_JSON)


def _add_routes(app: FastAPI, state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    metrics = state.metrics

    async def chat_completions(request: Request) -> Response:
        started = time.perf_counter()
        metrics.in_flight.inc()
        wants_stream = streaming = False
        try:
            user = state.authenticate(request)
            data = parse_json(await read_body(request, state.max_body_bytes))
            if data.get("model") not in state.model_ids:
                raise _model_not_found(data.get("model"), state.model_ids)
            req = ChatCompletionRequest.model_validate(data)
            router = state.routers.get(data["model"])
            user = user if state.keys is not None else req.user
            wants_stream = req.stream
            params = {**router_params(req), "session_id": request.headers.get(SESSION_HEADER)}
            with router.services.telemetry.incoming(request.headers):     # the caller's W3C traceparent
                if req.stream:
                    response = await until_disconnect(request.receive,
                                                      _open_stream(state, router, req, user, started, params))
                    streaming = True
                    return response
                resp = await until_disconnect(request.receive, router.acomplete(req.messages, user=user, **params))
            trace = resp.cascade
            body = completion_body(resp, trace)
            metrics.record(outcome=trace.outcome, trace=trace, seconds=time.perf_counter() - started, stream=False)
            return Response(body, media_type=_JSON, headers={TRACE_HEADER: trace_header(trace)})
        except ClientDisconnected:
            metrics.record(outcome="client_closed", seconds=time.perf_counter() - started, stream=wants_stream)
            return Response(status_code=499)         # nobody reads it: the client has gone
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-style error body
            return _failed(state, exc, started, stream=wants_stream)
        finally:
            if not streaming:     # a stream decrements when its last byte is out
                metrics.in_flight.dec()

    async def models(request: Request) -> Response:
        try:
            state.authenticate(request)
        except ApiError as exc:
            return _error_response(exc)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "deepseek-cascade"} for m in state.model_ids]
        return Response(json.dumps({"object": "list", "data": data}), media_type=_JSON)

    async def healthz(request: Request) -> Response:
        doc, ok = await health_report(state.router)
        return Response(json.dumps(doc), status_code=200 if ok else 503, media_type=_JSON)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return Response(state.openapi(), media_type=_JSON)

    # Plain Starlette routes (no dependency injection to solve per request: the handlers take the Request)
    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_route("/v1/models", models, methods=["GET"])
    app.add_route("/v1/feedback", feedback_route(state), methods=["POST"])
    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/metrics", prometheus, methods=["GET"])
    app.add_route("/openapi.json", openapi, methods=["GET"])
    return chat_completions


async def _open_stream(state: ServerState, router: Any, req: ChatCompletionRequest, user: str | None,
                       started: float, params: dict[str, Any]) -> Response:
    """Start the stream and wait up to ``sse_keepalive_s`` for its first chunk, so that failures before
    any output (budget, every model down) still get their HTTP status; then hand the rest to SSE (which
    sends keep-alive comments while a checked answer is still being made)."""
    opening = asyncio.ensure_future(open_first_chunk(router, req.messages, user, params))
    handed = False
    try:
        await asyncio.wait({opening}, timeout=state.sse_keepalive_s)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if opening.done():
            try:
                stream, _ = opening.result()
            except BaseException as exc:
                raise _budget_refusal(exc) or exc
            headers[TRACE_HEADER] = trace_header(stream.cascade)
        events = SSEStream(opening, include_usage=req.include_usage, on_done=_stream_done(state, started),
                           keepalive_s=state.sse_keepalive_s, refusal=_budget_refusal)
        handed = True
        return SSEResponse(events, headers)
    finally:
        if not handed and not opening.done():     # the client left (or the server is stopping)
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)


def _stream_done(state: ServerState, started: float) -> Callable[[str, Any], None]:
    def done(outcome: str, trace: Any) -> None:
        state.metrics.record(outcome=outcome, trace=trace, seconds=time.perf_counter() - started, stream=True)
        state.metrics.in_flight.dec()
    return done


def _budget_refusal(exc: BaseException) -> BudgetExceeded | None:
    """A direct (unchecked) stream reports a plan whose every attempt a cap refused as
    EscalationExhausted; the client should see what it is: a budget refusal (429)."""
    if isinstance(exc, EscalationExhausted) and exc.attempts and all(
            a.status == "skipped" and str(a.reason).startswith("budget:") for a in exc.attempts):
        return BudgetExceeded(str(exc.attempts[0].reason).removeprefix("budget: "))
    return None


def _failed(state: ServerState, exc: BaseException, started: float, *, stream: bool) -> Response:
    reply = error_reply(exc)
    if reply.status == 500:
        log.error("internal error serving a chat completion: %s", type(exc).__name__, exc_info=exc)
    if isinstance(exc, BudgetExceeded):
        state.metrics.refused(exc.scope, exc.window)
    trace = getattr(exc, "trace", None) if isinstance(exc, CascadeError) else None
    state.metrics.record(outcome=reply.outcome, trace=trace, seconds=time.perf_counter() - started, stream=stream)
    headers = reply.headers if trace is None else {**reply.headers, TRACE_HEADER: trace_header(trace)}
    return Response(reply.content(), status_code=reply.status, headers=headers, media_type=_JSON)


def _model_not_found(model: Any, known: tuple[str, ...]) -> ApiError:
    shown = model if isinstance(model, str) and len(model) <= 200 else type(model).__name__
    if model is None:
        return ApiError(400, "Missing required parameter: 'model'.", param="model",
                        code="missing_required_parameter")
    return ApiError(404, f"The model {shown!r} does not exist; this server serves {', '.join(known)}.",
                    param="model", code="model_not_found", outcome="not_found")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        body = error_json(str(exc.detail), "invalid_request_error", None, kind)
        return Response(json.dumps(body), status_code=exc.status_code, media_type=_JSON,
                        headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        body = error_json("invalid request: the request does not match this route's parameters",
                          "invalid_request_error", None, "invalid_value")
        return Response(json.dumps(body), status_code=400, media_type=_JSON)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return _error_response(exc)

