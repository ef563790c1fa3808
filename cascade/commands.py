"""Registration point for the heavier commands (each imports its machinery lazily, inside the command).

    cascade replay    --policy P [--data DIR [DIR...] | --traces FILE] [--map a=b] [--split test] [--sweep]
                      [--json] [--plot PNG] [--html FILE] [--quiet]
                      [--engine local|dask|ray] [--address tcp://HOST:8786] [--chunk-rows N] [--workers N]
                      [--spill-dir DIR]
                      (no --data and no --traces: the MMLU-Pro sample shipped in the package)
    cascade calibrate --policy my.yaml --data DIR [DIR...] --target quality=0.95 [--map a=b] [--out PATH] [--json]
                      [--engine local|dask|ray] [--address ...] [--chunk-rows N] [--workers N]
    cascade train     --data DIR [DIR...] --cheap MODEL --strong MODEL --out PATH [--checker]
                      [--engine local|dask|ray] [--address tcp://HOST:8786] [--workers N]
    cascade train     --traces T --out DIR --policy P [--data DIR...] [--target quality=0.95]   (cascade.learning)
    cascade promote   --candidate DIR --policy my.yaml --traces HELD-OUT.jsonl | --policy my.yaml --rollback
    cascade serve     --policy P --host H --port N [--budget-store URL] [--keys FILE]   (cascade.server.cli)
    cascade budget    [--budget-store URL] [--policy P] [--user U] [--keys FILE] [--json]  (cascade.server.cli)
    cascade traces    to-parquet IN.jsonl OUT.parquet                                  (cascade.replay.tracecli)
    cascade data      list [--json] | download NAME [--to DIR] [--sha256 FILE=HEX]      (cascade.datasets.cli)

Typed errors (CascadeError) are printed without a traceback and exit with code 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from policies.errors import CascadeError, ConfigError

_DATA_HELP = "Outcome folder (prompts, outcomes and optional responses parquet, meta.json); more folders may follow."
_REPLAY_DATA_HELP = _DATA_HELP + " Default: the MMLU-Pro sample shipped in the package (cascade data list)."
_MAP_HELP = "Map a catalog alias to a dataset model name: alias=model (repeatable)."
_ADDRESS_HELP = "Dask scheduler (tcp://HOST:8786) or Ray (ray://HOST:10001) address."
_WORKERS_HELP = "Workers of the local Dask / Ray cluster (no --address)."
_ENGINE_HELP = ("local: one process (with --chunk-rows, out of core: partitions one at a time); dask: partitions on "
                "a Dask cluster (--address, else a local cluster of --workers processes); ray: the same as Ray "
                "tasks (--address ray://HOST:10001 or auto, else a local Ray of --workers CPUs). Same report "
                "either way.")


def _engine_options(engine: str, address: Optional[str], chunk_rows: Optional[int], workers: int,
                    spill_dir: Optional[Path] = None) -> dict[str, Any]:
    """run_replay's engine options (none: the in-memory replay)."""
    if engine == "local" and chunk_rows is None:
        return {}
    return {"engine": engine, "address": address, "chunk_rows": chunk_rows, "workers": workers, "spill_dir": spill_dir}


def register(app: typer.Typer) -> None:
    """Add the commands implemented in other modules; each keeps its imports inside the command.
    Idempotent: a command already registered on ``app`` is left as it is."""
    present = {c.name for c in app.registered_commands}
    from cascade.learning.cli import promote_cmd                      # typer only; numpy loads in the command
    for name, fn in (("replay", replay_cmd), ("calibrate", calibrate_cmd), ("train", train_cmd),
                     ("promote", promote_cmd)):
        if name not in present:
            app.command(name)(fn)
    if "serve" not in present:
        from cascade.server.cli import register as register_server   # typer only; FastAPI loads in the command
        register_server(app)
    if "traces" not in {g.name for g in app.registered_groups}:
        from cascade.replay.tracecli import traces_app                # typer only; pyarrow loads in the command
        app.add_typer(traces_app, name="traces")
    if "data" not in {g.name for g in app.registered_groups}:
        from cascade.datasets.cli import data_app                    # typer only; httpx loads in the command
        app.add_typer(data_app, name="data")


def _guard(fn: Callable[[], Any]) -> Any:
    from cascade.cli import guard
    return guard(fn)


def _progress(quiet: bool) -> Any:
    from cascade.replay.progress import Progress
    return Progress(False if quiet else None)


def _console() -> Any:
    """stdout console; wide enough for the report tables when stdout is not a terminal."""
    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 160)


def replay_cmd(
        policy: str = typer.Option("default", "--policy", "-p", help="Built-in name or YAML path."),
        data: list[Path] = typer.Option([], "--data", "-d", help=_REPLAY_DATA_HELP),
        more: Optional[list[Path]] = typer.Argument(None, metavar="[DIR...]", help="More outcome folders."),
        traces: Optional[Path] = typer.Option(None, "--traces", help="A Router JSONL trace file instead of --data."),
        maps: list[str] = typer.Option([], "--map", help=_MAP_HELP),
        split: Optional[str] = typer.Option(None, "--split", help="test | calibration | train | all "
                                            "(default: test for outcome folders, all for traces)."),
        sweep: bool = typer.Option(False, "--sweep", help="Sweep the classifier (and answer-checker) thresholds."),
        as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Write the frontier plot to this PNG."),
        html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        engine: str = typer.Option("local", "--engine", help=_ENGINE_HELP),
        address: Optional[str] = typer.Option(None, "--address", help=_ADDRESS_HELP),
        chunk_rows: Optional[int] = typer.Option(None, "--chunk-rows", help="Prompts per partition."),
        workers: int = typer.Option(2, "--workers", help=_WORKERS_HELP),
        spill_dir: Optional[Path] = typer.Option(None, "--spill-dir", help="Where the partition folders are "
                                                 "written (default: a temp dir; a shared path for a cluster).")) -> None:
    """Replay recorded outcomes (or Router traces) through a policy: quality, cost, routing metrics."""
    from cascade.replay.run import replay_report
    dirs = [*data, *(more or [])]
    if plot is not None or html is not None:    # before the replay, not after it
        from cascade.extras import require
        _guard(lambda: require("matplotlib", "--plot / --html"))
    if not dirs and traces is None:     # the bundled sample: say so first (on stderr under --json)
        _say_bundled_sample(split, as_json)

    def run() -> dict[str, Any]:
        with _progress(quiet) as progress:
            doc = replay_report(policy, dirs, traces, maps, split, sweep, progress,
                                **_engine_options(engine, address, chunk_rows, workers, spill_dir))
        if traces is not None:          # what an exact response cache would have saved (cascade.cache.report)
            from cascade.cache.report import trace_cache_report
            from policies.loader import load_policy
            doc["cache"] = trace_cache_report(traces, load_policy(policy).cache)
        if plot is not None:
            from cascade.replay.html import write_plot
            write_plot(doc, plot)
        if html is not None:
            from cascade.replay.html import write_html
            write_html(doc, html)
        return doc
    doc = _guard(run)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    from cascade.replay.render import print_report
    console = _console()
    print_report(doc, console)
    if "cache" in doc:
        from cascade.cache.report import cache_lines
        for line in cache_lines(doc["cache"]):
            console.print(line, highlight=False, markup=False)
    for label, path in (("plot", plot), ("html", html)):
        if path is not None:
            console.print(f"wrote {label}: {path}", highlight=False, markup=False)


def _say_bundled_sample(split: Optional[str], to_stderr: bool) -> None:
    from cascade.datasets.sample import describe_default
    line = _guard(lambda: describe_default(split))
    if to_stderr:
        sys.stderr.write(line + "\n")
    else:
        _console().print(line, highlight=False, markup=False, soft_wrap=True)


def calibrate_cmd(
        policy: str = typer.Option(..., "--policy", "-p", help="The policy YAML file to calibrate (written in place)."),
        data: list[Path] = typer.Option([], "--data", "-d", help=_DATA_HELP),
        more: Optional[list[Path]] = typer.Argument(None, metavar="[DIR...]", help="More outcome folders."),
        target: str = typer.Option(..., "--target", "-t", help="quality=0.95 | strong-share=0.3 | usd-per-1k=0.5"),
        maps: list[str] = typer.Option([], "--map", help=_MAP_HELP),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the calibrated policy here instead."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        engine: str = typer.Option("local", "--engine", help=_ENGINE_HELP),
        address: Optional[str] = typer.Option(None, "--address", help=_ADDRESS_HELP),
        chunk_rows: Optional[int] = typer.Option(None, "--chunk-rows", help="Requests per partition."),
        workers: int = typer.Option(2, "--workers", help=_WORKERS_HELP)) -> None:
    """Choose the classifier (and answer-checker) thresholds for a target on the calibration split."""
    from cascade.calibrate import calibrate

    def run() -> dict[str, Any]:
        dirs = [*data, *(more or [])]
        if not dirs:
            raise ConfigError("give --data DIR [DIR...]")
        with _progress(quiet) as progress:
            return calibrate(policy, dirs, target, maps, out, progress,
                             **_engine_options(engine, address, chunk_rows, workers))
    doc = _guard(run)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        return
    _print_calibration(doc)


def _print_calibration(doc: dict[str, Any]) -> None:
    from rich.table import Table
    from cascade.replay.render import fnum, pct
    console = _console()
    chosen, prev = doc["chosen"], doc["previous"]
    line = f"calibrated {doc['policy_file']} for {doc['target']['kind']}={doc['target']['value']:g}: " \
           f"routing.thresholds[0] {fnum(prev['t1'], 'g')} -> {chosen['t1']:g}"
    if chosen["t2"] is not None:
        line += f"; answer_checker threshold {fnum(prev['t2'], 'g')} -> {chosen['t2']:g}"
    if chosen.get("agreement") is not None:
        line += f"; agreement check {prev.get('agreement')} -> {chosen['agreement']}"
    console.print(line, highlight=False, markup=False)
    for r in doc.get("runner_ups", ()):
        console.print(f"  runner-up: agreement {r['agreement']}, t1 {r['t1']:g}"
                      + ("" if r["t2"] is None else f", t2 {r['t2']:g}")
                      + f": {pct(r['quality_retained'])} of strong quality, ${r['usd_per_1k']:.4f} / 1k, "
                      f"{pct(r['strong_share'])} strong (calibration)", highlight=False, markup=False)
    table = Table("split", "requests", "quality", "of strong", "$ / 1k", "savings", "strong share", "escalation")
    for split in ("calibration", "test"):
        row = doc.get(split)
        if row:
            table.add_row(split, f"{row['n']:,}", fnum(row["quality"]), pct(row["quality_retained"]),
                          fnum(row["usd_per_1k"], ".4f"), pct(row["savings_vs_strong"]), pct(row["strong_share"]),
                          pct(row["escalation_rate"]))
    console.print(table)


def train_cmd(
        data: list[Path] = typer.Option([], "--data", "-d", help=_DATA_HELP),
        more: Optional[list[Path]] = typer.Argument(None, metavar="[DIR...]", help="More outcome folders."),
        cheap: Optional[str] = typer.Option(None, "--cheap", help="Dataset name of the cheap model."),
        strong: Optional[str] = typer.Option(None, "--strong", help="Dataset name of the strong model."),
        out: Path = typer.Option(..., "--out", "-o", help="Artifact path to write (.json + .npz); with --traces a folder."),
        checker: bool = typer.Option(False, "--checker", help="Train the answer checker instead of the classifier."),
        traces: Optional[Path] = typer.Option(None, "--traces", help="Labelled Router traces (shadow / feedback lines): "
                                              "fit classifier and checker for --policy, write OUT/policy.yaml."),
        policy: str = typer.Option("default", "--policy", "-p", help="With --traces: the policy to extend."),
        target: str = typer.Option("quality=0.95", "--target", help="With --traces: the calibration target."),
        as_json: bool = typer.Option(False, "--json", help="With --traces: print the report as JSON only."),
        engine: str = typer.Option("local", "--engine", help="local: features extracted in this process; dask / "
                                   "ray: on a cluster's workers (--address, else a local cluster of --workers "
                                   "processes), the fit here. The same artifact either way."),
        address: Optional[str] = typer.Option(None, "--address", help=_ADDRESS_HELP),
        workers: int = typer.Option(2, "--workers", help=_WORKERS_HELP)) -> None:
    """Train the prompt classifier (or, with --checker, the answer checker) on outcome folders; with
    --traces, the classifier and checker of a policy on its own labelled traffic (outcome folders mixed in)."""
    if traces is not None and engine != "local":
        return _guard(_refuse("--engine applies to training on outcome folders (--data), not to --traces"))
    if traces is not None:
        from cascade.learning.cli import train_traces_cmd
        return train_traces_cmd(traces, out, policy, [*data, *(more or [])], target, as_json)

    def run() -> Any:
        dirs = [*data, *(more or [])]
        if not dirs:
            raise ConfigError("give --data DIR [DIR...]")
        for d in dirs:
            if not (d / "prompts.parquet").is_file() or not (d / "outcomes.parquet").is_file():
                raise ConfigError(f"{d}: not an outcome folder (needs prompts.parquet and outcomes.parquet)")
        trainer = _trainer("train_answer_checker" if checker else "train_classifier")
        from cascade.train_engine import feature_map
        with feature_map(engine, address, workers) as features:
            return trainer([str(d) for d in dirs], cheap, strong, str(out), seed=0, features=features)
    result = _guard(run)
    console = _console()
    console.print(f"wrote {'answer checker' if checker else 'classifier'}: {out}", highlight=False, markup=False)
    if isinstance(result, dict):
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")


def _refuse(message: str) -> Callable[[], Any]:
    def run() -> Any:
        raise ConfigError(message)
    return run


def _trainer(name: str) -> Callable[..., Any]:
    """The training function ``name`` of :mod:`classifiers.training.train`, imported only here."""
    module_name = "classifiers.training.train"
    try:
        import importlib
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name in (module_name, "classifiers.training", "classifiers"):
            raise CascadeError(f"training is not available in this build yet: {module_name} is missing") from None
        raise CascadeError(f"training needs {exc.name!r}: pip install 'deepseek-cascade[train]'") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise CascadeError(f"training is not available in this build yet: {module_name}.{name} is missing")
    return fn
