"""Replay: the same engine with another executor, over recorded outcomes or Router traces.

    from cascade.replay import replay_report
    doc = replay_report("default", data_dirs=["../shared/data/mmlu_pro"], full_sweep=True)

Modules: ``data`` / ``arrow`` / ``traces`` (recorded outcomes), ``checks`` (answer checks over recorded
answers), ``executor`` (the replay executor behind ``decide``), ``sweep`` (the same rule, vectorised),
``report`` (every figure, as JSON), ``render`` (rich tables), ``html`` (PNG plot, self-contained HTML),
``progress`` (the stderr progress bar), ``run`` (one replay end to end).
Nothing heavy is imported until a function is called.
"""
from __future__ import annotations

from typing import Any

__all__ = ["replay_report", "run_replay", "load_data"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cascade.replay import run
        return getattr(run, name)
    raise AttributeError(f"module 'cascade.replay' has no attribute {name!r}")
