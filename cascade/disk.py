"""Files the library creates on its own say so: one log line when a file that holds state is first made.

``Router("default")`` creates nothing when it is built or plans; the first request that reserves budget
creates the policy's ledger (``budgets.store``: ``~/.cascade/spend.db`` unless ``CASCADE_BUDGET_STORE`` or
``budget_store=`` says otherwise), and a settlement the store could not take creates the spool
(``$CASCADE_SPOOL_DIR`` or ``~/.cascade/spool``). Each creation is logged once by the ``cascade.disk``
logger: at WARNING when the file is in the home directory (shown by Python's default logging, so
nothing lands there unannounced), at INFO elsewhere (a location the caller chose).
"""
from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["announce_created"]

log = logging.getLogger("cascade.disk")


def announce_created(path: Path, what: str, how_to_move: str) -> None:
    try:
        in_home = Path(path).resolve().is_relative_to(Path.home().resolve())
    except (OSError, RuntimeError):
        in_home = False
    log.log(logging.WARNING if in_home else logging.INFO, "cascade created %s at %s (%s)", what, path, how_to_move)
