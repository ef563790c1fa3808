"""``python -m cascade.server serve|budget ...``: the server's commands without the main CLI."""
from __future__ import annotations

import typer

from cascade.server.cli import register


def main() -> None:
    app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="deepseek-cascade server commands: serve, budget.")
    register(app)
    from cascade.cli import run_app
    run_app(app)


if __name__ == "__main__":
    main()
