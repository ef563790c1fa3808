"""Registration point for the heavier commands (each imports its machinery lazily)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the commands implemented in other modules; each keeps its imports inside the command."""
    return None
