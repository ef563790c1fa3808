"""The loop's commands: ``cascade train --traces`` (a branch of ``cascade train``) and ``cascade promote``.
Typer only at import; the machinery loads inside the commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer


def train_traces_cmd(traces: Path, out: Path, policy: str, data: list[Path], target: str, as_json: bool) -> None:
    from cascade.cli import guard

    def run() -> Any:
        from cascade.learning.train import train_from_traces
        return train_from_traces(traces, out, policy, [str(d) for d in data], target=target)
    result = guard(run)
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        return
    print(f"wrote {result['policy_file']} (classifier {result['classifier']}, checker {result['checker']})")
    print(f"{result['labelled_requests']} labelled requests: fitted on {result['fitted_on']} "
          f"({result['inadequate_cheap_answers']} with an inadequate cheap answer) and {result['outcome_rows']} "
          f"outcome-data rows; thresholds calibrated on the other {result['calibrated_on']} for {result['target']}: "
          f"{result['thresholds']}")


def promote_cmd(
        policy: Path = typer.Option(..., "--policy", "-p", help="The live policy file to switch (or roll back)."),
        candidate: Optional[Path] = typer.Option(None, "--candidate", help="A folder written by cascade train --traces."),
        traces: Optional[Path] = typer.Option(None, "--traces", help="Held-out labelled traces to replay both on."),
        quality_margin: float = typer.Option(0.0, "--quality-margin",
                                             help="Quality loss tolerated at the 95% interval's lower bound."),
        seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
        rollback: bool = typer.Option(False, "--rollback", help="Put back the file the latest promotion replaced."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Promote a trained candidate into the live policy file when replay on held-out traces shows it no
    worse in quality and cheaper (bootstrap 95% intervals printed); --rollback undoes the latest promotion."""
    from cascade.cli import fail, guard
    from policies.errors import ConfigError, PromotionRefused
    refused: list[PromotionRefused] = []

    def run() -> Any:
        from cascade.learning import promote as promotion
        try:
            if rollback:
                return promotion.rollback(policy)
            if candidate is None or traces is None:
                raise ConfigError("give --candidate DIR and --traces HELD-OUT.jsonl (or --rollback)")
            return promotion.promote(candidate, policy, traces, quality_margin=quality_margin, seed=seed)
        except PromotionRefused as exc:
            refused.append(exc)
            return None
    result = guard(run)
    if refused:
        report = getattr(refused[0], "report", None)
        if as_json and report is not None:
            sys.stdout.write(json.dumps({**report, "promoted": False}, indent=2) + "\n")
        fail(refused[0], code=1)
    _print(result, as_json)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({**result, "promoted": "version" in result}, indent=2) + "\n")
    elif "restored" in result:
        print(f"rolled back {result['policy_file']} to {result['restored']}")
    else:
        from cascade.learning.promote import verdict
        print(f"promoted into {result.get('version')}: {verdict(result)}")
