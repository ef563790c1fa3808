"""One replay, end to end: policy + recorded data -> classifier scores -> checks -> the engine replay at
the policy's own thresholds -> the vectorised sweep -> the report (:mod:`cascade.replay.report`)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.loader import load_policy
from policies.schema import Policy

from cascade.replay.checks import CheckTable, swept_checker
from cascade.replay.data import ReplayData, load_outcome_folders, parse_maps
from cascade.replay.executor import Replayed, replay_engine
from cascade.replay.progress import QUIET, Progress
from cascade.replay.sweep import GRID, DecisionArrays, Sweep, check_equal, decision_arrays, sweep
from cascade.replay.traces import load_traces

SCORE_CHUNK = 4096


@dataclass
class ReplayRun:
    policy: Policy
    policy_source: str
    data: ReplayData
    scores: np.ndarray
    score_source: str
    checks: CheckTable | None                 # None: replayed by partitions (cascade.replay.parts)
    engine: Replayed
    arrays: DecisionArrays
    sweep: Sweep
    full_sweep: bool
    timings: dict[str, float] = field(default_factory=dict)


def load_data(policy: Policy, data_dirs: Sequence[str | Path] = (), traces: str | Path | None = None,
              maps: Sequence[str] | dict[str, str] = (), split: str | None = None,
              progress: Progress = QUIET) -> ReplayData:
    """Outcome folders (none: the bundled sample) or one trace file; default split: test for folders, all for traces."""
    mapping = maps if isinstance(maps, dict) else parse_maps(maps)
    if traces is not None and data_dirs:
        raise ConfigError("give outcome folders (--data) or a trace file (--traces), not both")
    if traces is not None:
        return load_traces(traces, policy, mapping, split or "all")
    if not data_dirs:  # no data given: the MMLU-Pro sample shipped in the package
        from cascade.datasets.sample import sample_folder
        data_dirs = [sample_folder()]
    with progress.task("reading outcome data") as advance:
        return load_outcome_folders(list(data_dirs), policy, mapping, split or "test", tick=advance)


def classifier_scores(policy: Policy, data: ReplayData, progress: Progress = QUIET,
                      classifier: Any = None) -> tuple[np.ndarray, str]:
    """The policy's classifier score of every request, batch-scored once per distinct prompt text
    (``classifier``: a scorer object to use instead of the policy's, as ``Router(classifier=...)``)."""
    if data.prompts is None:
        assert data.recorded_scores is not None
        return data.recorded_scores, "recorded in the trace"
    if classifier is None:
        from classifiers import load_classifier
        classifier = load_classifier(policy.routing.classifier)
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in data.prompts), dtype=np.int64, count=len(data))
    unique = list(index)
    out = np.empty(len(unique))
    with progress.task(f"scoring prompts ({policy.routing.classifier})", total=len(unique)) as advance:
        for start in range(0, len(unique), SCORE_CHUNK):
            chunk = unique[start:start + SCORE_CHUNK]
            out[start:start + len(chunk)] = np.asarray(classifier.score(chunk), dtype=np.float64)
            advance(len(chunk))
    if not np.isfinite(out).all():
        raise ConfigError(f"classifier {policy.routing.classifier!r} returned non-finite scores")
    return out[inverse], f"classifier {getattr(classifier, 'name', policy.routing.classifier)!r} (batch)"


def run_replay(policy_source: str | Policy, data_dirs: Sequence[str | Path] = (), traces: str | Path | None = None,
               maps: Sequence[str] | dict[str, str] = (), split: str | None = None, full_sweep: bool = False,
               progress: Progress = QUIET, data: ReplayData | None = None, classifier: Any = None,
               answer_checkers: dict[str, Any] | None = None, **engine: Any) -> ReplayRun:
    """Replay ``policy_source`` over outcome folders, a trace file, or ``data`` already read.
    ``classifier`` / ``answer_checkers`` (artifact name -> scorer) replace the policy's scorers.
    ``engine`` (``engine="local" | "dask" | "ray"``, ``address``, ``chunk_rows``, ``spill_dir``, ``workers``):
    replay by partitions (:mod:`cascade.replay.parts`); without them, everything is read at once."""
    if engine.get("engine", "local") != "local" or engine.get("chunk_rows"):
        return _run_parts(policy_source, data_dirs, traces, maps, split, full_sweep, progress, data,
                          {"classifier": classifier, "answer_checkers": answer_checkers}, engine)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 4)
        clock = now

    policy = load_policy(policy_source)
    label = policy_source if isinstance(policy_source, str) else policy.name
    if data is None:
        data = load_data(policy, data_dirs, traces, maps, split, progress)
    if not len(data):
        raise ConfigError(f"no request to replay in split {data.split!r} of {', '.join(data.sources)}")
    lap("read_data")
    scores, score_source = classifier_scores(policy, data, progress, classifier)
    lap("classifier")
    with progress.task("answer checks") as advance:
        checks = CheckTable(policy, data, tick=advance, answer_checkers=answer_checkers)
    lap("checks")
    with progress.task("engine replay", total=len(data)) as advance:
        engine = replay_engine(policy, data, scores, checks, tick=advance)
    lap("engine_replay")
    arrays = decision_arrays(policy, data, scores, checks)
    if engine.pin_floor is not None:          # session pins (traces): the sweep starts where the engine's pins did
        arrays = replace(arrays, pin_floor=engine.pin_floor)
        data.notes.append("session pins: every threshold of the sweep keeps the pins of the policy's own run")
    check_equal(policy.name, engine, arrays)              # the sweep is only reported when it is the engine
    t2_grid = list(GRID) if full_sweep and swept_checker(policy) is not None else [arrays.t2]
    with progress.task("sweep", total=len(t2_grid)) as advance:
        result = sweep(arrays, GRID, t2_grid, tick=advance)
    lap("sweep")
    return ReplayRun(policy, str(label), data, scores, score_source, checks, engine, arrays, result, full_sweep, timings)


def _run_parts(policy_source: str | Policy, data_dirs: Sequence[str | Path], traces: str | Path | None,
               maps: Sequence[str] | dict[str, str], split: str | None, full_sweep: bool, progress: Progress,
               data: ReplayData | None, scorers: dict[str, Any], engine: dict[str, Any]) -> ReplayRun:
    from cascade.replay.parts import run_parts
    policy = load_policy(policy_source)
    label = str(policy_source if isinstance(policy_source, str) else policy.name)
    mapping = maps if isinstance(maps, dict) else parse_maps(maps)
    from cascade.replay.traceparquet import is_parquet
    parquet_traces = data is None and traces is not None and not data_dirs and is_parquet(Path(traces))
    if data is None and not parquet_traces and (traces is not None or not data_dirs):
        data = load_data(policy, data_dirs, traces, mapping, split, progress)
    with progress.task(f"replay by partitions ({engine.get('engine') or 'local'})"):
        if data is not None:
            return run_parts(policy, label, data=data, full_sweep=full_sweep, **scorers, **engine)
        if parquet_traces:                             # read by row groups on the workers
            from cascade.replay.traces import load_traces
            load_traces(traces, policy, mapping, split or "all", row_groups=[])     # the arguments' errors, early
            return run_parts(policy, label, traces=traces, maps=mapping, split=split or "all", full_sweep=full_sweep,
                             **scorers, **engine)
        from cascade.replay.data import check_maps
        check_maps(policy, mapping)
        return run_parts(policy, label, folders=[str(Path(d)) for d in data_dirs], maps=mapping,
                         split=split or "test", full_sweep=full_sweep, **scorers, **engine)


def replay_report(policy_source: str | Policy, data_dirs: Sequence[str | Path] = (), traces: str | Path | None = None,
                  maps: Sequence[str] | dict[str, str] = (), split: str | None = None, full_sweep: bool = False,
                  progress: Progress = QUIET, **scorers: Any) -> dict[str, Any]:
    """The replay report (a JSON-ready dict; see :func:`cascade.replay.report.build_report`); ``scorers``
    also takes the engine options of :func:`run_replay`."""
    from cascade.replay.report import build_report
    run = run_replay(policy_source, data_dirs, traces, maps, split, full_sweep, progress, **scorers)
    started = time.perf_counter()
    doc = build_report(run)
    doc["timings_s"]["report"] = round(time.perf_counter() - started, 4)
    return doc
