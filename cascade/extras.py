"""The optional parts of the install (``pip install 'deepseek-cascade[EXTRA]'``) and the error a missing one
gives. The core (``Router``, the CLI, replay, the bundled sample) needs none of them.

    server  fastapi, uvicorn, uvloop, httptools, prometheus-client   cascade serve, cascade.server
    plot    matplotlib                                                cascade replay --plot / --html
    redis   redis                                                     redis:// budget stores, shared health
    train   scikit-learn                                              cascade train
    otel    opentelemetry-sdk                                         telemetry: {opentelemetry: true}
    distributed  distributed (Dask)                                   cascade replay / calibrate / train --engine dask
    ray     ray                                                       cascade replay / calibrate / train --engine ray
"""
from __future__ import annotations

import importlib
from types import ModuleType

from policies.errors import CascadeError

# (cascade train names the [train] extra itself: cascade.commands._trainer)
EXTRA_OF = {"fastapi": "server", "starlette": "server", "uvicorn": "server", "prometheus_client": "server",
            "matplotlib": "plot", "redis": "redis", "distributed": "distributed", "opentelemetry": "otel",
            "ray": "ray"}


class MissingExtra(CascadeError, ImportError):
    """A feature needs a package of an extra that is not installed; the message names the extra."""


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtra | None:
    """The typed error for ``exc`` when the missing module belongs to an extra, else None."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    package = "opentelemetry-sdk" if top == "opentelemetry" else top
    return MissingExtra(f"{what} needs {package}, which is not installed: pip install 'deepseek-cascade[{extra}]'",
                        name=top)


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (of an extra) or raise :class:`MissingExtra` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, what)
        if error is None:
            raise
        raise error from None
