"""The ``cascade`` command line: validate, route (and more commands in cascade.commands)."""
from __future__ import annotations

import base64
import json
import mimetypes
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from policies.errors import CascadeError, ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="deepseek-cascade: cheap-first LLM routing with checks, budgets and replay.")


def _version(value: bool) -> None:
    if value:
        from cascade import __version__
        typer.echo(f"deepseek-cascade {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """deepseek-cascade: cheap-first LLM routing with checks, budgets and replay."""
err = Console(stderr=True)
out = Console()


def fail(exc: CascadeError, code: int = 2) -> None:
    """Print a typed error (never a traceback) and exit."""
    err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guard(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; print a CascadeError (or an OS error, as a ConfigError) without a traceback, exit 2."""
    try:
        return fn()
    except CascadeError as exc:
        fail(exc)
    except OSError as exc:
        fail(ConfigError(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": ")))


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Policy YAML files (or built-in names).")) -> None:
    """Check policy files; print every error with file, line and field. Exit 2 on any error."""
    from policies.loader import load_policy
    bad = 0
    for f in files:
        try:
            policy = load_policy(str(f))
        except ConfigError as exc:
            bad += 1
            _print_config_error(exc)
            continue
        ladders = ", ".join(f"{m}: {' → '.join(r.model for r in rungs)}" for m, rungs in policy.escalation.ladders.items())
        out.print(f"[green]✓[/] {escape(f'{f}: policy {policy.name!r} — {ladders}')}", highlight=False)
    if bad:
        raise typer.Exit(2)


def _print_config_error(exc: ConfigError) -> None:
    """The error's first line, then one ``file:line: field: message`` line per problem, never wrapped
    (so that piped output can be read by editors and grep)."""
    head, _, rest = str(exc).partition("\n")
    err.print(f"[red]✗[/] {escape(head)}", highlight=False, soft_wrap=True)
    for line in rest.splitlines():
        err.print(line, highlight=False, soft_wrap=True, markup=False)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _messages(text: str, images: list[Path], files: list[Path]) -> list[dict[str, Any]]:
    for p in [*images, *files]:
        if not p.is_file():
            fail(ConfigError(f"{p}: no such file"))
    if not images and not files:
        return [{"role": "user", "content": text}]
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": _data_uri(p)}} for p in images]
    for p in files:
        if _is_text_file(p):          # notes, code, JSON: their text, not a scanned document for OCR
            try:
                parts.append({"type": "text", "text": f"{p.name}:\n{p.read_text(encoding='utf-8')}"})
                continue
            except UnicodeDecodeError:
                pass
        parts.append({"type": "file", "file": {"filename": p.name, "file_data": _data_uri(p)}})
    return [{"role": "user", "content": parts}]


def _is_text_file(path: Path) -> bool:
    mime = mimetypes.guess_type(path.name)[0] or ""
    return mime.startswith("text/") or mime in ("application/json", "application/xml", "application/x-yaml")


@app.command("route")
def route_cmd(text: str = typer.Argument(..., help="The prompt."),
              image: list[Path] = typer.Option([], "--image", help="Attach an image (repeatable)."),
              file: list[Path] = typer.Option([], "--file", help="Attach a file (repeatable): a PDF or image is a "
                                              "scanned document; a text file is read as text."),
              policy: str = typer.Option("default", "--policy", "-p", help="Built-in name or YAML path."),
              max_tokens: Optional[int] = typer.Option(None, "--max-tokens"),
              as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON.")) -> None:
    """Show what the router would do with a prompt, and why — without calling a model."""
    import warnings

    from cascade.router import MissingCredentialsWarning, Router
    try:
        with warnings.catch_warnings():          # a dry run calls no model: keys are not needed
            warnings.simplefilter("ignore", MissingCredentialsWarning)
            router = Router(policy, budget_store="memory://")
        params = {} if max_tokens is None else {"max_tokens": max_tokens}
        routed = router.route(_messages(text, image, file), **params)
    except CascadeError as exc:
        fail(exc)
    doc = {"policy": router.policy.name, "prompt_tokens": routed.request.prompt_tokens, **routed.plan.to_dict()}
    if routed.refused is not None:
        r = routed.refused
        doc["refused"] = {"error": type(r).__name__, "message": str(r), "scope": r.scope, "window": r.window,
                          "limit_usd": r.limit_usd, "retry_after": r.retry_after}
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    _print_plan(doc)


def _print_plan(doc: dict[str, Any]) -> None:
    out.print(f"policy [bold]{doc['policy']}[/] · {doc['modality']} · {doc['prompt_tokens']} prompt tokens · "
              f"score [bold]{doc['score']:.3f}[/]", highlight=False)
    table = Table("#", "model", "litellm model", "est. max $", "checks", "reason")
    for i, a in enumerate(doc["plan"], 1):
        checks = ", ".join(c if isinstance(c, str) else c["name"] for c in a["checks"])
        table.add_row(str(i), a["model"], a["litellm_model"], f"{a['est_cost_usd']:.6f}", checks, a["reason"])
    if doc["plan"]:
        out.print(table)
    for s in doc["skipped"]:
        out.print(f"  skipped {s['model']}: {s['reason']}", highlight=False)
    if doc.get("refused"):
        out.print(f"refused ({doc['refused']['error']}): {doc['refused']['message']}", highlight=False,
                  markup=False, soft_wrap=True)


def run_app(typer_app: typer.Typer) -> None:
    """Run a Typer app; a package of an uninstalled extra is a one-line error naming the extra (exit 2)."""
    try:
        typer_app()
    except ModuleNotFoundError as exc:
        from cascade.extras import missing_extra
        error = missing_extra(exc, f"cascade {' '.join(sys.argv[1:2])}".strip())
        if error is None:
            raise
        err.print(f"[bold red]error:[/] {type(error).__name__}: {escape(str(error))}", highlight=False)
        sys.exit(2)


def main() -> None:
    from cascade import commands  # registers the data commands (replay, train, calibrate, serve, budget, data)
    commands.register(app)
    run_app(app)


if __name__ == "__main__":
    main()
