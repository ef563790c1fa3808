"""What ``GET /healthz`` says about one ``cascade serve`` process.

    {"status": "ok" | "degraded", "degraded": [<why>, ...], "policy": "default",
     "store": {"url", "reachable", "open_reservations" | "error"},
     "breakers": {<model>: "closed" | "half_open" | "open"},
     "ladders": {<modality>: "ok" | "open"},          # "open": every model of that ladder is open
     "spool": {"path", "pending", "pending_usd", "oldest_at"}}    # when the store has a spool

HTTP 503 when this process cannot serve at all (its budget store is unreachable or lost its ledger);
HTTP 200 with ``"status": "degraded"`` and the reasons when every model of a ladder has its circuit
open: requests of that kind fail (fast, with Retry-After) until a circuit half-opens, but another
replica would not do better — a load balancer should keep sending traffic.
"""
from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["health_report"]

_STORE_TIMEOUT_S = 5.0


async def health_report(router: Any) -> tuple[dict[str, Any], bool]:
    """The document and whether the process can serve (the HTTP status: 200 or 503)."""
    store = await _store_health(router.store)
    breakers = {alias: router.health.state(alias) for alias in router.policy.catalog}
    degraded: list[str] = []
    if not store["reachable"]:
        degraded.append(f"budget store unreachable: {store.get('error', '?')}")
    ladders: dict[str, str] = {}
    for modality, rungs in router.policy.escalation.ladders.items():
        models = [r.model for r in rungs]
        if all(breakers[m] == "open" for m in models):
            ladders[modality] = "open"
            wait = router.circuit_retry_after(models)
            degraded.append(f"every model of the {modality} ladder has its circuit open ({', '.join(models)}); "
                            f"the first half-opens in {wait:.0f} s" if wait is not None else
                            f"every model of the {modality} ladder has its circuit open ({', '.join(models)})")
        else:
            ladders[modality] = "ok"
    doc: dict[str, Any] = {"status": "degraded" if degraded else "ok", "degraded": degraded,
                           "policy": router.policy.name, "store": store, "breakers": breakers, "ladders": ladders}
    spool = router.gate.spool
    if spool is not None:
        try:
            doc["spool"] = await asyncio.to_thread(spool.summary)
        except OSError as exc:
            doc["spool"] = {"path": str(spool.path), "error": type(exc).__name__}
    return doc, store["reachable"]


async def _store_health(store: Any) -> dict[str, Any]:
    report: dict[str, Any] = {"url": getattr(store, "url", "?"), "reachable": True}
    try:
        verify = getattr(store, "verify", None)
        if verify is not None:              # a store that can tell it lost its ledger (Redis)
            await asyncio.wait_for(asyncio.to_thread(verify), _STORE_TIMEOUT_S)
        report["open_reservations"] = await asyncio.wait_for(asyncio.to_thread(store.open_reservations),
                                                             _STORE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        report["reachable"], report["error"] = False, type(exc).__name__
        if type(exc).__name__ == "LedgerLost":
            report["detail"] = str(exc)
    return report
