"""deepseek-cascade: cheap-first LLM routing with answer checks, budgets, fallbacks and replay.

    from cascade import Router
    resp = Router("default").complete(messages=[{"role": "user", "content": "Hi"}])

``import cascade`` is light: the Router, litellm and the rest load on first use.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Router", "RouteTrace", "load_policy", "CascadeError", "ConfigError", "BudgetExceeded",
           "EscalationExhausted", "ProviderError", "InvalidRequestError", "AuthenticationError",
           "MissingCredentialsWarning", "RouterSettings", "MockTransport", "Principal"]

_LAZY = {"Router": "cascade.router", "RouteTrace": "cascade.trace", "load_policy": "policies.loader",
         "CascadeError": "policies.errors", "ConfigError": "policies.errors", "BudgetExceeded": "policies.errors",
         "EscalationExhausted": "policies.errors", "ProviderError": "policies.errors",
         "InvalidRequestError": "policies.errors", "AuthenticationError": "policies.errors",
         "MissingCredentialsWarning": "cascade.router", "RouterSettings": "cascade.services",
         "MockTransport": "cascade.transport", "Principal": "policies.budget"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cascade' has no attribute {name!r}")
