"""A rich progress display on stderr for long replays; silent when stderr is not a terminal or asked."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class Progress:
    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None

    def __enter__(self) -> "Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
        """Yield ``advance(amount=1)``; a no-op when the display is off."""
        if self._bar is None:
            yield lambda *_: None
            return
        task_id = self._bar.add_task(description, total=total)

        def advance(amount: Any = 1) -> None:
            self._bar.advance(task_id, amount if isinstance(amount, (int, float)) else 1)
        try:
            yield advance
        finally:
            self._bar.remove_task(task_id)


QUIET = Progress(False)
