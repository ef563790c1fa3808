"""``GET /dashboard``: one self-contained HTML page (inline CSS and JS, nothing fetched from elsewhere) that
polls ``GET /dashboard/data.json`` every few seconds.

The figures come from where the rest of the server keeps them, never from a second bookkeeping:

    spend by model, by user, by day     the budget store's ledger, tallied by :class:`SpendTally` (aggregate
                                        SQL on SQLite, bounded stream reads on Redis: only what the ledger
                                        gained since the last poll is read)
    each cap: limit, spent, left        :func:`cascade.budget_report.cap_rows` under the server's caps, for
                                        the global caps and each user with recorded spend
    routing share, escalations,         the app's Prometheus registry (what ``/metrics`` exposes):
    escalation reasons, errors by        cascade_requests_total, cascade_escalations_total,
    type, latency p50 / p95              cascade_escalation_reasons_total, cascade_request_duration_seconds

Access: without ``--keys`` both are open (like the API itself: a loopback server). With ``--keys`` the page
itself holds no figures and is served to anyone; its JSON needs the key of an *admin* user (``admins:`` in
the keys file, see :mod:`cascade.server.auth`): 401 without a valid key, 403 for a key of a user who is not
an admin, so that no API user can read other users' spend. The page asks for the key (or reads it from
the URL's ``#key=...`` fragment, which browsers never send to the server) and keeps it in the tab's
sessionStorage.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from importlib.resources import files
from typing import Any, Iterable

from starlette.requests import Request
from starlette.responses import Response

from cascade.server.errors import ApiError
from cascade.server.ledger_spend import SpendTally
from policies.errors import CascadeError

__all__ = ["add_dashboard_routes", "dashboard_data", "histogram_quantile"]

_ANSWERED = ("ok", "best_answer")
_NO_STORE = {"Cache-Control": "no-store"}


def add_dashboard_routes(app: Any, state: Any) -> None:
    page = files("cascade.server").joinpath("dashboard.html").read_bytes()
    tallies: list[SpendTally] = []          # the running ledger figures, kept between polls (router built at start-up)

    async def dashboard(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={**_NO_STORE, "Content-Security-Policy": _CSP})

    async def data(request: Request) -> Response:
        try:
            _authorize(state, request)
            if not tallies:
                tallies.append(SpendTally(state.router.store))
            doc = await asyncio.to_thread(dashboard_data, state, tally=tallies[0])
        except (ApiError, CascadeError) as exc:          # 401 / 403, or the store unreachable (503)
            from cascade.server.errors import error_reply
            reply = error_reply(exc)
            return Response(reply.content(), status_code=reply.status, headers=reply.headers,
                            media_type="application/json")
        return Response(json.dumps(doc), media_type="application/json", headers=_NO_STORE)

    app.add_route("/dashboard", dashboard, methods=["GET"])
    app.add_route("/dashboard/data.json", data, methods=["GET"])


# the page may talk to its own origin only: no CDN, no external font, no third-party script
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"


def _authorize(state: Any, request: Request) -> None:
    if state.keys is None:
        return
    user = state.authenticate(request)          # 401 for a missing or wrong key
    if not state.keys.is_admin(user):
        raise ApiError(403, "the dashboard needs the API key of an admin user (admins: in the keys file)",
                       type="invalid_request_error", code="admin_key_required", outcome="forbidden")


def dashboard_data(state: Any, *, now: float | None = None, tally: SpendTally | None = None) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-ready data (see the module docstring for the sources).
    ``tally``: the running ledger figures of earlier polls (a fresh one reads the whole ledger once)."""
    from cascade.budget_report import cap_rows

    router, store = state.router, state.router.store
    now = time.time() if now is None else now
    families = {f.name: f for f in state.metrics.collect()}
    spend = (tally or SpendTally(store)).read()
    users = sorted(r["user"] for r in spend["by_user"] if r["user"] != "(no user)")
    user_caps = [c for c in router.caps if c.scope == "user"]
    caps = [{"scope": "global", "user": None, **c} for c in cap_rows(store, None, _global(router.caps), now)]
    for user in users if user_caps else ():
        caps += [{"scope": "user", "user": user, **c} for c in cap_rows(store, user, user_caps, now)]
    return {"generated_at": now, "policy": router.policy.name, "store": getattr(store, "url", type(store).__name__),
            "spend": spend, "caps": caps, "open_reservations": store.open_reservations(now), **_traffic(families)}


def _global(caps: Iterable[Any]) -> list[Any]:
    return [c for c in caps if c.scope == "global"]


def _traffic(families: dict[str, Any]) -> dict[str, Any]:
    by_model: dict[str, float] = {}
    errors: dict[str, float] = {}
    total = 0.0
    for s in _samples(families, "cascade_requests", "_total"):
        total += s.value
        if s.labels["outcome"] in _ANSWERED:
            by_model[s.labels["model"]] = by_model.get(s.labels["model"], 0.0) + s.value
        else:
            errors[s.labels["outcome"]] = errors.get(s.labels["outcome"], 0.0) + s.value
    answered = sum(by_model.values())
    escalated = sum(s.value for s in _samples(families, "cascade_escalations", "_total"))
    reasons = {s.labels["reason"]: s.value for s in _samples(families, "cascade_escalation_reasons", "_total")}
    return {"requests": {"total": total, "answered": answered, "escalated": escalated,
                         "escalated_share": escalated / answered if answered else 0.0,
                         "by_model": [{"model": m, "count": n, "share": n / answered}
                                      for m, n in sorted(by_model.items())]},
            "escalation_reasons": [{"reason": r, "count": n} for r, n in sorted(reasons.items()) if n],
            "errors": [{"type": t, "count": n} for t, n in sorted(errors.items()) if n],
            "latency": _latency(families),
            "metrics_spend_usd": sum(s.value for s in _samples(families, "cascade_spend_usd", "_total"))}


def _samples(families: dict[str, Any], name: str, suffix: str) -> list[Any]:
    family = families.get(name)
    return [] if family is None else [s for s in family.samples if s.name == name + suffix]


def _latency(families: dict[str, Any]) -> dict[str, Any]:
    """p50 / p95 over every chat completion (streamed or not) from the latency histogram's buckets."""
    buckets: dict[float, float] = {}
    for s in _samples(families, "cascade_request_duration_seconds", "_bucket"):
        le = float(s.labels["le"])
        buckets[le] = buckets.get(le, 0.0) + s.value
    cumulative = sorted(buckets.items())
    count = cumulative[-1][1] if cumulative else 0.0
    return {"count": count, "p50_s": histogram_quantile(0.5, cumulative),
            "p95_s": histogram_quantile(0.95, cumulative)}


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``cumulative`` is [(upper bound, observations <= it)], ascending,
    ending with +Inf; linear interpolation inside the bucket that holds the rank; None without observations.
    A rank in the +Inf bucket is the largest finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for bound, seen in cumulative:
        if seen >= rank:
            if math.isinf(bound):
                return lower
            if seen == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (seen - below)
        lower, below = bound, seen
    return lower
