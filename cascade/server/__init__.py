"""``cascade serve``: an OpenAI-compatible HTTP front for one Router per process.

    from cascade.server import create_app, ServerSettings
    app = create_app(ServerSettings(policy="default", budget_store="redis://localhost:6379/0",
                                    keys_file="keys.yaml"))          # then: uvicorn.run(app, ...)

    cascade serve --policy default --host 0.0.0.0 --port 8000 --budget-store redis://... --keys keys.yaml
    python -m cascade.server serve ...                                # the same, without the main CLI

See :mod:`cascade.server.app` (endpoints), :mod:`cascade.server.auth` (the keys file),
:mod:`cascade.server.errors` (status codes), :mod:`cascade.server.wire` (the ``cascade`` extension and
the ``x-cascade-trace`` header) and :mod:`cascade.server.metrics` (Prometheus names).
Importing this package imports neither FastAPI nor litellm; ``create_app`` does the former.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ServerSettings", "create_app", "load_keys", "KeyRing"]

_LAZY = {"ServerSettings": "cascade.server.app", "create_app": "cascade.server.app",
         "load_keys": "cascade.server.auth", "KeyRing": "cascade.server.auth"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from cascade.extras import require     # a missing fastapi names the [server] extra
        return getattr(require(_LAZY[name], "cascade.server"), name)
    raise AttributeError(f"module 'cascade.server' has no attribute {name!r}")
