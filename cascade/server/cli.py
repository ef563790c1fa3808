"""The ``serve`` and ``budget`` commands; ``register(app)`` adds them to a Typer app.

    cascade serve  --policy P --host H --port N [--budget-store URL] [--keys FILE] [--global-cap-usd X]
                   [--user-cap-usd X] [--cap-window total|minute|hour|day|month] [--trace PATH]
                   [--max-body-bytes N] [--max-prompt-chars N] [--sse-keepalive-s 5] [--access-log]
                   [--timeout-keep-alive 75] [--log-level info] [--graceful-timeout S] [--spool-dir DIR]
    cascade budget [--budget-store URL] [--policy P] [--user U ...] [--global-cap-usd X] [--user-cap-usd X]
                   [--cap-window W] [--spool-dir DIR] [--apply-spool] [--confirm-new-ledger] [--json]

Shutdown (SIGTERM or SIGINT): no new connections; in-flight requests get ``--graceful-timeout`` seconds to
finish (default: the policy's attempt timeout + 5 s); then they are cancelled, their reservations released
and their provider calls left to finish, so that what the provider bills is recorded; the process exits
once it holds no reservation and every late answer is in the ledger (or in the spool).

Typed errors (a bad policy, store URL or keys file) print one line and exit 2, never a traceback.
"""
from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import math
import os
import sys
import tempfile
from typing import Any, Callable, Iterator, Optional

import typer

from policies.errors import CascadeError, ConfigError

__all__ = ["register", "serve_cmd", "budget_cmd"]

_WINDOW_HELP = "Window of the --global-cap-usd / --user-cap-usd overrides: total, minute, hour, day or month."
_SPOOL_HELP = ("Directory of the settlement spool (spend the budget store could not take, applied when it is back) "
               "and of the Redis ledger-generation marker (default: $CASCADE_SPOOL_DIR or ~/.cascade/spool); "
               "keep it on a persistent disk.")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``budget`` to ``app`` (their machinery is imported inside the commands)."""
    app.command("serve")(serve_cmd)
    app.command("budget")(budget_cmd)


def _fail(exc: CascadeError) -> None:
    from cascade.cli import fail
    fail(exc)


def _guard(fn: Callable[[], Any]) -> Any:
    from cascade.cli import guard
    return guard(fn)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_cmd(
        policy: str = typer.Option("default", "--policy", "-p", help="Built-in policy name or YAML path."),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0: every interface)."),
        port: int = typer.Option(8000, "--port", help="TCP port."),
        budget_store: Optional[str] = typer.Option(None, "--budget-store",
                                                   help="memory://, sqlite:///path or redis://host:port/db "
                                                        "(default: the policy's)."),
        keys: Optional[str] = typer.Option(None, "--keys", help="YAML/JSON file mapping API key -> user name; "
                                                                "requests then need 'Authorization: Bearer <key>'."),
        global_cap_usd: Optional[float] = typer.Option(None, "--global-cap-usd", help="Global cap (USD), replaces the policy's."),
        user_cap_usd: Optional[float] = typer.Option(None, "--user-cap-usd", help="Per-user cap (USD), replaces the policy's."),
        cap_window: str = typer.Option("total", "--cap-window", help=_WINDOW_HELP),
        trace: Optional[str] = typer.Option(None, "--trace", help="Append one JSON trace line per request here."),
        max_body_bytes: int = typer.Option(8 * 1024 * 1024, "--max-body-bytes", help="Larger request bodies get 413."),
        max_prompt_chars: Optional[int] = typer.Option(None, "--max-prompt-chars",
                                                       help="Prompts with more characters of text get 413 at once, "
                                                            "before any tokenizing (default: 8 per token of the "
                                                            "policy's largest context window, 1,024,000)."),
        sse_keepalive_s: float = typer.Option(5.0, "--sse-keepalive-s",
                                              help="A stream whose first chunk takes longer (a checked answer is "
                                                   "held whole until it passed) starts with SSE keep-alive "
                                                   "comments, one per this many seconds."),
        transport: str = typer.Option("direct", "--transport",
                                      help="direct (default): every catalog model that can (deepseek/ and openai/) "
                                           "is called without litellm's per-call pipeline, 1/6 to 1/10 of its CPU per "
                                           "call (streams still go through litellm); litellm: every model "
                                           "through litellm; policy: each model's own transport."),
        access_log: bool = typer.Option(False, "--access-log", help="Log one line per request (never headers or keys)."),
        keep_alive_s: int = typer.Option(75, "--timeout-keep-alive",
                                           help="Close idle keep-alive connections after this many seconds "
                                                "(longer than clients' own idle timeouts, so that a client never "
                                                "reuses a connection the server is closing)."),
        workers: int = typer.Option(1, "--workers", help="Server processes (uvicorn workers) sharing the port; "
                                                           "more than one needs a shared budget store "
                                                           "(sqlite:/// or redis://)."),
        graceful_timeout: Optional[float] = typer.Option(
            None, "--graceful-timeout", help="On SIGTERM/SIGINT, seconds in-flight requests get to finish before "
                                             "they are cancelled (default: the policy's attempt timeout + 5 s). "
                                             "Either way no reservation outlives the process and late answers "
                                             "are recorded before it exits."),
        spool_dir: Optional[str] = typer.Option(None, "--spool-dir", help=_SPOOL_HELP),
        log_level: str = typer.Option("info", "--log-level", help="uvicorn log level.")) -> None:
    """Serve the cascade as an OpenAI-compatible API (POST /v1/chat/completions, /v1/models, /healthz, /metrics)."""
    import uvicorn

    from cascade.server.app import SETTINGS_ENV, ServerSettings, create_app
    from cascade.server.auth import load_keys

    settings = ServerSettings(policy=policy, budget_store=budget_store,
                              global_cap_usd=global_cap_usd, user_cap_usd=user_cap_usd, cap_window=cap_window,
                              trace_path=trace, max_body_bytes=max_body_bytes,
                              transport=None if transport == "policy" else transport, spool_dir=spool_dir,
                              max_prompt_chars=max_prompt_chars, sse_keepalive_s=sse_keepalive_s)
    if max_body_bytes < 1:
        _fail(ConfigError(f"--max-body-bytes must be positive, got {max_body_bytes}"))
    if not sse_keepalive_s > 0:
        _fail(ConfigError(f"--sse-keepalive-s must be positive, got {sse_keepalive_s}"))
    if graceful_timeout is not None and not (math.isfinite(graceful_timeout) and graceful_timeout >= 0):
        _fail(ConfigError(f"--graceful-timeout must be a number of seconds >= 0, got {graceful_timeout}"))
    keyring = None if keys is None else _guard(lambda: load_keys(keys))
    if transport not in ("direct", "litellm", "policy"):
        _fail(ConfigError(f"--transport must be direct, litellm or policy, got {transport!r}"))
    if workers < 1:
        _fail(ConfigError(f"--workers must be at least 1, got {workers}"))
    router = _guard(settings.make_router)        # a bad policy / store URL / cap: one line, exit 2
    if workers > 1 and router.store.url.startswith("memory://"):
        router.close()
        _fail(ConfigError(f"--workers {workers} needs a budget store the workers share (--budget-store "
                          "sqlite:///path or redis://host:port/db): memory:// is per process, so every "
                          "worker would enforce the caps on its own"))
    app = create_app(lambda: router, keys=keyring, max_body_bytes=max_body_bytes, sse_keepalive_s=sse_keepalive_s)
    auth = "no auth" if keys is None else f"{len(app.state.cascade.keys)} API keys"
    if keys is None and not is_loopback(host):
        typer.echo(f"warning: serving on {host} without --keys: anyone who can reach this port can spend "
                   "your provider budget", err=True)
    _warn_without_persistence(router.store)
    _record_caps(router, spool_dir)
    if graceful_timeout is None:
        graceful_timeout = router.policy.retries.attempt_timeout_s + 5.0
    typer.echo(f"cascade serve: policy {router.policy.name!r}, budget store {router.store.url}, {auth}, "
               f"http://{host}:{port}/v1, dashboard http://{host}:{port}/dashboard (graceful shutdown "
               f"{graceful_timeout:g} s)", err=True)
    options = dict(host=host, port=port, loop="auto", http="auto", access_log=access_log, log_level=log_level,
                   lifespan="on", backlog=4096, timeout_keep_alive=keep_alive_s,
                   timeout_graceful_shutdown=math.ceil(graceful_timeout))
    if workers == 1:
        uvicorn.run(app, **options)
        return
    router.close()              # each worker builds its own from the same settings
    settings_json = json.dumps(dataclasses.asdict(dataclasses.replace(settings, keys_file=keys)))
    with tempfile.TemporaryDirectory(prefix="cascade-metrics-") as metrics_dir, \
            _environ({SETTINGS_ENV: settings_json,      # the workers inherit both
                      "PROMETHEUS_MULTIPROC_DIR": os.environ.get("PROMETHEUS_MULTIPROC_DIR", metrics_dir)}):
        uvicorn.run("cascade.server.app:app_from_env", factory=True, workers=workers, **options)


def _warn_without_persistence(store: Any) -> None:
    persistence = getattr(store, "persistence", None)
    if persistence is not None and persistence() == "none":
        typer.echo(f"warning: the Redis of {store.url} keeps nothing across a restart (no appendonly, no save): "
                   "a restart loses the ledger, and this server then refuses budgeted requests until "
                   "`cascade budget --confirm-new-ledger`. Run Redis with appendonly yes.", err=True)


def _record_caps(router: Any, spool_dir: str | None) -> None:
    """Record the caps beside the store, for ``cascade budget`` (said once on stderr: a file written)."""
    from cascade.server.served_caps import record_caps
    try:
        path = record_caps(router.store, router.caps, policy=router.policy.name, spool_dir=spool_dir)
    except OSError as exc:
        typer.echo(f"warning: the caps could not be recorded for `cascade budget`: {exc}", err=True)
        return
    if path is not None:
        typer.echo(f"cascade serve: caps recorded in {path} (read by `cascade budget`)", err=True)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the block (the worker processes read them), then restored."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def budget_cmd(
        budget_store: Optional[str] = typer.Option(None, "--budget-store", help="Store URL (default: the policy's)."),
        policy: Optional[str] = typer.Option(None, "--policy", "-p",
                                             help="Policy whose caps to show (built-in name or YAML; default: the "
                                                  "caps the last `cascade serve` on this store recorded, else "
                                                  "the default policy's)."),
        user: list[str] = typer.Option([], "--user", "-u", help="Show this user (repeatable; default: every user with spend)."),
        global_cap_usd: Optional[float] = typer.Option(None, "--global-cap-usd", help="Global cap (USD) instead of the policy's."),
        user_cap_usd: Optional[float] = typer.Option(None, "--user-cap-usd", help="Per-user cap (USD) instead of the policy's."),
        cap_window: str = typer.Option("total", "--cap-window", help=_WINDOW_HELP),
        spool_dir: Optional[str] = typer.Option(None, "--spool-dir", help=_SPOOL_HELP),
        apply_spool: bool = typer.Option(False, "--apply-spool", help="Apply the spooled settlements to the store "
                                                                      "now (a running server does it by itself)."),
        confirm_new_ledger: bool = typer.Option(False, "--confirm-new-ledger",
                                                help="After a Redis lost its ledger: accept it and begin a new one "
                                                     "(every cap restarts from what the new ledger holds); servers "
                                                     "resume and apply their spools."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Show spend and remaining budget per user and globally, the spool, and the state of the ledger."""
    from cascade.budget import open_budget_store
    from cascade.budget_report import budget_caps, budget_report, store_state
    from cascade.spool import open_spool
    from policies.loader import load_policy

    def run() -> dict[str, Any]:
        pol = load_policy(policy or "default")
        caps = budget_caps(pol, global_cap_usd=global_cap_usd, user_cap_usd=user_cap_usd, cap_window=cap_window)
        store = open_budget_store(budget_store or pol.budgets.store)
        try:
            spool = open_spool(store, spool_dir)
            caps, source = _caps_to_show(store, caps, spool_dir, explicit=policy is not None or global_cap_usd
                                         is not None or user_cap_usd is not None, policy=pol.name)
            actions = _budget_actions(store, spool, confirm=confirm_new_ledger, apply=apply_spool)
            return {**budget_report(store, caps, users=user or None), **store_state(store, spool),
                    "caps_from": source, "actions": actions}
        finally:
            store.close()
    doc = _guard(run)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    print_budget(doc)


def _caps_to_show(store: Any, caps: Any, spool_dir: str | None, *, explicit: bool, policy: str) -> tuple[Any, str]:
    """The caps the command was given, else those the last ``cascade serve`` on this store recorded, else
    the default policy's; and where they come from, in words."""
    if not explicit:
        from cascade.server.served_caps import read_caps
        served = read_caps(store, spool_dir)
        if served is not None:
            return served["caps"], f"cascade serve (policy {served['policy']}), recorded in {served['path']}"
    return caps, f"policy {policy}" + (" with the command's overrides" if explicit and policy else "")


def _budget_actions(store: Any, spool: Any, *, confirm: bool, apply: bool) -> list[str]:
    """``--confirm-new-ledger`` then ``--apply-spool``; what was done, one line each."""
    done = []
    if confirm:
        if not hasattr(store, "confirm_new_ledger"):
            raise ConfigError(f"--confirm-new-ledger: the budget store {store.url} keeps no ledger generation "
                              "(only redis:// does)")
        done.append(f"new ledger generation {store.confirm_new_ledger()} confirmed")
    if apply:
        if spool is None:
            raise ConfigError(f"--apply-spool: the budget store {store.url} has no spool")
        applied, error = spool.apply(store)
        done.append(f"applied {applied} spooled settlement(s)" + (f"; the store refused the rest: {error}"
                                                                   if error is not None else ""))
    return done


def print_budget(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(f"budget store {doc['store']}: ${doc['total_spent_usd']:.6f} spent in all; "
                  f"open reservations: {doc['open_reservations']}", highlight=False, markup=False, soft_wrap=True)
    table = Table("who", "spent (all time)", "cap window", "limit", "spent (window)", "reserved", "remaining")
    glob = doc["global"] or [None]
    for i, row in enumerate(glob):
        table.add_row("global" if i == 0 else "", f"${doc['total_spent_usd']:.6f}" if i == 0 else "", *_cap_cells(row))
    for u in doc["users"]:
        for i, row in enumerate(u["caps"] or [None]):
            table.add_row(u["user"] if i == 0 else "", f"${u['spent_usd']:.6f}" if i == 0 else "", *_cap_cells(row))
    if doc["unattributed_spent_usd"]:
        table.add_row("(no user)", f"${doc['unattributed_spent_usd']:.6f}", *_cap_cells(None))
    console.print(table)
    if doc.get("caps_from"):
        console.print(f"caps: {doc['caps_from']}", highlight=False, markup=False, soft_wrap=True)
    for line in [*doc.get("actions", []), *_state_lines(doc)]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _state_lines(doc: dict[str, Any]) -> list[str]:
    lines = []
    spool = doc.get("spool")
    if spool is not None:
        lines.append(f"spool {spool['path']}: {spool['pending']} settlement(s), ${spool['pending_usd']:.9f} not in "
                     "the ledger yet" + (" (applied when the store takes writes; --apply-spool to do it now)"
                                         if spool["pending"] else ""))
    ledger = doc.get("ledger")
    if ledger is not None:
        state = "ok" if ledger["state"] == "ok" else ledger["state"].upper()
        lines.append(f"ledger generation {ledger['generation'] or '-'}: {state}; redis persistence: "
                     f"{ledger['persistence']}" + (f"\n{ledger['detail']}" if ledger["detail"] else ""))
    return lines


def _cap_cells(row: dict[str, Any] | None) -> list[str]:
    if row is None:
        return ["no cap", "-", "-", "-", "-"]
    return [row["window"], f"${row['limit_usd']:.6f}", f"${row['spent_usd']:.6f}", f"${row['reserved_usd']:.6f}",
            f"${row['remaining_usd']:.6f}"]
