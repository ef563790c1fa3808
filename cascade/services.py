"""What a Router is made of: its settings (plain values) and its collaborators, built by one factory.

    settings = RouterSettings(budget_store="sqlite:///spend.db", trace_path="traces.jsonl")
    services = build_services(policy, settings)                 # store, health, sink, transports, spool, ...
    Router(policy, services=services)                           # or Router(policy, settings, **overrides)

Tests and embedding apps inject collaborators instead (a store or classifier object, a health board,
``transport=MockTransport(handler)``, a fake ``clock``) by passing them to :func:`build_services`.
"""
from __future__ import annotations

import asyncio
import functools
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from policies.budget import Cap, deployment_caps
from policies.schema import Policy, with_transport

from cascade.health import HealthBoard
from cascade.request_ids import RequestIds
from cascade.spool import SettlementSpool, open_spool
from cascade.telemetry import NO_TELEMETRY, open_telemetry
from cascade.trace import TraceSink
from cascade.transport import Transport, transports_for


@dataclass(frozen=True)
class RouterSettings:
    """A Router's configuration: values only, nothing opened."""

    budget_store: str | None = None          # store URL; None: the policy's budgets.store
    trace_path: str | os.PathLike[str] | None = None
    trace_text: bool = False
    classifier: str | None = None            # registry name or artifact path; None: the policy's
    global_cap_usd: float | None = None
    user_cap_usd: float | None = None
    cap_window: str = "total"
    team_cap_usd: float | None = None        # each team / org / API key (a Principal's levels)
    org_cap_usd: float | None = None
    key_cap_usd: float | None = None
    health_url: str | None = None            # share circuit breakers through this Redis
    transport: str | None = None             # operator override of the catalog's transports
    seed: int | None = None                  # retry jitter, and reproducible request ids (cascade.request_ids)
    spool_dir: str | None = None             # where settlements the store could not take wait ($CASCADE_SPOOL_DIR)
    env: Mapping[str, str] | None = None     # where key / base-URL variables are read (os.environ)
    max_prompt_chars: int | None = None      # longer prompts are refused at once; None: planning's default
    planning_threads: int = 2                # threads that plan long prompts off the event loop
    opentelemetry: bool | None = None        # GenAI spans and metrics; None: the policy's telemetry.opentelemetry


_SETTINGS = frozenset(f.name for f in fields(RouterSettings))
_COLLABORATORS = frozenset({"store", "health", "sink", "transports", "clock", "wall_clock", "sleep", "rng", "spool",
                            "telemetry"})


@dataclass
class RouterServices:
    """A Router's collaborators. ``owns_store``: the Router closes the store it was built with."""

    policy: Policy
    store: Any
    health: Any
    sink: TraceSink | None
    transports: Mapping[str, Transport]
    classifier: Any
    caps: tuple[Cap, ...]
    env: Mapping[str, str]
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = asyncio.sleep
    rng: Any = field(default_factory=random.Random)
    owns_store: bool = False
    spool: SettlementSpool | None = None     # settlements the store could not take (None: memory://)
    max_prompt_chars: int = 0                # 0: planning.default_max_prompt_chars(policy)
    planning_threads: int = 2
    telemetry: Any = NO_TELEMETRY             # cascade.telemetry: spans and metrics (off: a no-op)
    request_ids: Callable[[], str] = field(default_factory=RequestIds)   # each request's id (cascade.request_ids)
    _planner: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _planner_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.max_prompt_chars:
            from cascade.planning import default_max_prompt_chars
            self.max_prompt_chars = default_max_prompt_chars(self.policy)

    async def off_loop(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the planning pool (at most ``planning_threads`` at once; the rest
        wait their turn), so that a long prompt's tokenizing never stalls the event loop."""
        with self._planner_lock:
            if self._planner is None:
                self._planner = ThreadPoolExecutor(self.planning_threads, thread_name_prefix="cascade-plan")
        return await asyncio.get_running_loop().run_in_executor(self._planner, functools.partial(fn, *args, **kwargs))

    def credentials(self, alias: str) -> tuple[str | None, str | None]:
        """(api_base, api_key) of a catalog model, from the catalog and the environment."""
        spec = self.policy.catalog[alias]
        base = spec.api_base or (self.env.get(spec.api_base_env) if spec.api_base_env else None)
        key = self.env.get(spec.api_key_env) if spec.api_key_env else None
        return base or None, key or None

    def missing_credentials(self) -> dict[str, str]:
        """alias -> the unset key variable, for catalog models whose transport calls a provider's own
        endpoint (no base URL configured: a self-hosted server may need no key) without a key."""
        out = {}
        for alias, spec in self.policy.catalog.items():
            base, key = self.credentials(alias)
            transport = self.transports.get(alias)
            if spec.api_key_env and not key and not base and getattr(transport, "needs_credentials", False):
                out[alias] = spec.api_key_env
        return out

    def secrets(self) -> list[str]:
        return [k for alias in self.policy.catalog for k in [self.credentials(alias)[1]] if k]

    async def warm_up(self, *, streaming: bool = False) -> None:
        """Import litellm in a worker thread (the event loop keeps serving) before the first call (or
        stream) of a transport that needs it, so that no attempt's timeout counts the 6-9 s import."""
        if any(t.needs_litellm or (streaming and t.streams_with_litellm) for t in self.transports.values()):
            from cascade import providers
            if not providers.is_loaded():
                await asyncio.to_thread(providers.warm_up)

    def close(self) -> None:
        if self._planner is not None:
            self._planner.shutdown(wait=False, cancel_futures=True)
        if self.owns_store:
            self.store.close()
        self.telemetry.shutdown()


def build_services(policy: Policy, settings: RouterSettings | None = None, **options: Any) -> RouterServices:
    """The one factory of a Router's collaborators. ``options``: fields of :class:`RouterSettings`,
    or collaborators to use as they are (``budget_store``/``classifier`` given as objects, ``store``,
    ``health``, ``sink``, ``transport`` as a :class:`Transport`, ``transports``, ``clock``, ``wall_clock``,
    ``sleep``, ``rng``, ``spool`` — a SettlementSpool, or None for none)."""
    unknown = set(options) - _SETTINGS - _COLLABORATORS
    if unknown:
        raise TypeError(f"Router() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    given = {k: options.pop(k) for k in list(options) if k in _COLLABORATORS}
    for name in ("budget_store", "classifier", "transport"):      # objects: collaborators, not settings
        if options.get(name) is not None and not isinstance(options[name], str):
            given[{"budget_store": "store", "transport": "transport_obj"}.get(name, name)] = options.pop(name)
    settings = _merged(settings, options)
    if settings.transport is not None:           # an operator's override of the catalog's transports
        policy = with_transport(policy, settings.transport)
    env = os.environ if settings.env is None else settings.env
    clock = given.get("clock", time.monotonic)
    store, owns = _store(policy, settings, given)
    health = given.get("health") or _health(policy, settings, clock, store_given="store" in given)
    services = RouterServices(
        policy=policy, store=store, health=health,
        sink=None, transports=given.get("transports") or transports_for(policy, given.get("transport_obj")),
        classifier=given.get("classifier") or _classifier(policy, settings),
        caps=deployment_caps(policy.budgets, global_cap_usd=settings.global_cap_usd,
                             user_cap_usd=settings.user_cap_usd, cap_window=settings.cap_window,
                             team_cap_usd=settings.team_cap_usd, org_cap_usd=settings.org_cap_usd,
                             key_cap_usd=settings.key_cap_usd),
        env=env, clock=clock, wall_clock=given.get("wall_clock", time.time),
        sleep=given.get("sleep", asyncio.sleep), rng=given.get("rng") or random.Random(settings.seed), owns_store=owns,
        request_ids=RequestIds(settings.seed),
        spool=given["spool"] if "spool" in given else open_spool(store, settings.spool_dir),
        max_prompt_chars=_positive("max_prompt_chars", settings.max_prompt_chars) or 0,
        planning_threads=_positive("planning_threads", settings.planning_threads) or 2)
    services.sink = given.get("sink") or (TraceSink(settings.trace_path, keep_text=settings.trace_text,
                                                    secrets=services.secrets())
                                          if settings.trace_path is not None else None)
    try:
        services.telemetry = given.get("telemetry") or open_telemetry(
            policy, opentelemetry=settings.opentelemetry, secrets=services.secrets())
    except BaseException:
        services.close()            # a missing [otel] extra or a bad OTEL_* exporter: nothing left open
        raise
    return services


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        from policies.errors import ConfigError
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def _merged(settings: RouterSettings | None, options: dict[str, Any]) -> RouterSettings:
    base = settings or RouterSettings()
    return RouterSettings(**{**base.__dict__, **options}) if options else base


def _store(policy: Policy, settings: RouterSettings, given: dict[str, Any]) -> tuple[Any, bool]:
    if given.get("store") is not None:
        return given["store"], False
    from cascade.budget import open_budget_store
    return open_budget_store(settings.budget_store or policy.budgets.store), True


def _classifier(policy: Policy, settings: RouterSettings) -> Any:
    from classifiers import load_classifier
    return load_classifier(settings.classifier or policy.routing.classifier)


def _health(policy: Policy, settings: RouterSettings, clock: Callable[[], float], *, store_given: bool) -> Any:
    """Per-process breakers; shared through Redis when ``health_url`` is given or the budget store
    itself is Redis (one replica's discovery that a provider is down protects the others)."""
    local = HealthBoard(policy.circuit_breaker, clock=clock)
    store = None if store_given else settings.budget_store or policy.budgets.store
    url = settings.health_url or (store if store and store.startswith(("redis://", "rediss://")) else None)
    if url is None:
        return local
    from cascade.health_shared import SharedHealthBoard
    return SharedHealthBoard(local, url)
