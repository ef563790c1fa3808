"""Which Router answers a ``model``: the server's own policy, or any built-in one, over ONE set of services.

    routers = PolicyRouters(main_router)
    routers.model_ids        # ("cascade", "cascade/default", "cascade/budget-strict", ...)
    routers.get("cascade/budget-strict")   # a Router of that policy, made on first use

``cascade`` and ``cascade/<the server's policy name>`` are the server's Router. ``cascade/<built-in>``
(see :data:`policies.loader.BUILTIN_POLICIES`) is a Router of that policy that shares the server's
budget store, spool, health board (circuit breakers) and trace sink, and enforces the server's caps
(``--global-cap-usd`` / ``--user-cap-usd`` or its policy's) as well as that policy's own: choosing another
policy never bypasses a budget. Catalog models the two policies share keep the server's settings
(transport, base URL), so ``--transport`` applies to them too; each Router keeps its own HTTP sessions.
"""
from __future__ import annotations

from typing import Any

from policies.budget import deployment_caps
from policies.loader import BUILTIN_POLICIES, load_policy
from policies.schema import Policy

__all__ = ["PolicyRouters"]


class PolicyRouters:
    def __init__(self, main: Any) -> None:
        self.main = main
        own = f"cascade/{main.policy.name}"
        names = ["cascade", own] + [f"cascade/{p}" for p in BUILTIN_POLICIES]
        self.model_ids: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._own = {"cascade", own}
        self._others: dict[str, Any] = {}

    def get(self, model: str) -> Any:
        """The Router serving ``model`` (one of :attr:`model_ids`)."""
        if model in self._own:
            return self.main
        router = self._others.get(model)
        if router is None:
            router = self._others[model] = self._make(model.removeprefix("cascade/"))
        return router

    def all(self) -> list[Any]:
        return [*self._others.values(), self.main]

    def _make(self, name: str) -> Any:
        from cascade.router import Router
        from cascade.services import build_services

        main = self.main
        policy = _with_catalog_of(load_policy(name), main.policy)
        s = main.services
        services = build_services(policy, store=s.store, health=s.health, sink=s.sink, spool=s.spool,
                                  env=s.env, clock=s.clock, wall_clock=s.wall_clock,
                                  max_prompt_chars=s.max_prompt_chars)
        own_caps = deployment_caps(policy.budgets)
        services.caps = tuple(dict.fromkeys((*main.caps, *own_caps)))   # the server's caps, then the policy's
        router = Router(policy, services=services)
        router._started = True          # the server's Router applies the shared spool, not this one
        return router

    async def aclose(self) -> None:
        for router in self.all():
            await router.aclose()


def _with_catalog_of(policy: Policy, main: Policy) -> Policy:
    """``policy`` with the server policy's entry for every catalog alias both have (its transport, base URL)."""
    shared = [a for a in policy.catalog if a in main.catalog]
    if not shared:
        return policy
    data = policy.model_dump()
    main_data = main.model_dump()
    for alias in shared:
        data["catalog"][alias] = main_data["catalog"][alias]
    return Policy.model_validate(data)
