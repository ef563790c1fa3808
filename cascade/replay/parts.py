"""Replay by partitions, in one process (out of core) or on a Dask cluster, with the report of the
in-memory replay to the last digit.

A partition is a slice of the requests: a partition folder cut by :mod:`cascade.replay.spill`, or rows of
data already read. Each is replayed with the code of the in-memory path (:func:`replay_part`: classifier
scores, answer checks, the per-request engine replay, the decision arrays, the engine == vectorised
check), and only numbers come back (no prompt or answer text: a few hundred bytes per request). The
merge concatenates them in partition order, which is the order of the in-memory replay, so the sweep,
the baselines and every metric are computed on the same arrays (integer sums: exact in any order).

Engines: ``local`` (partitions one after another in this process) and ``dask`` (``distributed``:
the partitions mapped over the workers of a cluster at ``address``, or of a ``LocalCluster`` started
for the run). Workers need this package installed and, for folders, read access to the partition
directory (``spill_dir``: a shared filesystem on a real cluster).
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.schema import Policy

from cascade.replay.checks import CHECKER, CheckTable, swept_checker
from cascade.replay.data import ReplayData, folder_notes, policy_needs_responses
from cascade.replay.executor import Replayed, replay_engine
from cascade.replay.sweep import GRID, DecisionArrays, check_equal, decision_arrays, sweep

ENGINES = ("local", "dask", "ray")
#: DecisionArrays fields that are per request (the others are per rung or scalars)
PER_REQUEST = ("score", "base_first", "usable", "est", "available", "quality_units", "cost_nano", "fixed_pass",
               "fixed_npass", "chk", "agree_pass", "agree_asks", "consult_nano", "empty")


@dataclass
class Part:
    """What one partition's replay returns: numbers only."""

    data: ReplayData            # without texts
    scores: np.ndarray
    score_source: str
    engine: Replayed
    arrays: DecisionArrays
    timings: dict[str, float] = field(default_factory=dict)


def slim(data: ReplayData) -> ReplayData:
    return replace(data, prompts=None, responses=None, consult_responses=None, recorded_checks=None)


def replay_part(policy: Policy, data: ReplayData, classifier: Any = None,
                answer_checkers: Mapping[str, Any] | None = None) -> Part:
    """Replay one partition with the in-memory path's steps."""
    from cascade.replay.run import classifier_scores
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    scores, source = classifier_scores(policy, data, classifier=classifier)
    timings["classifier"] = time.perf_counter() - clock
    clock = time.perf_counter()
    checks = CheckTable(policy, data, answer_checkers=answer_checkers)
    timings["checks"] = time.perf_counter() - clock
    clock = time.perf_counter()
    engine = replay_engine(policy, data, scores, checks)
    arrays = decision_arrays(policy, data, scores, checks)
    if engine.pin_floor is not None:               # session pins (traces): as in the in-memory replay
        arrays = replace(arrays, pin_floor=engine.pin_floor)
    if len(data):                                  # an empty partition (every prompt dropped) has nothing to compare
        check_equal(policy.name, engine, arrays)
    timings["engine_replay"] = time.perf_counter() - clock
    return Part(slim(data), scores, source, engine, arrays, timings)


def replay_folder_part(folder: str, policy: Policy, maps: Mapping[str, str], classifier: Any = None,
                       answer_checkers: Mapping[str, Any] | None = None) -> Part:
    """Read one partition folder (:mod:`cascade.replay.spill`) and replay it (runs on a worker)."""
    from cascade.replay.data import load_outcome_folders
    clock = time.perf_counter()
    data = load_outcome_folders([folder], policy, maps, "all", strict=False)
    read = time.perf_counter() - clock
    part = replay_part(policy, data, classifier, answer_checkers)
    part.timings = {"read_data": read, **part.timings}
    return part


def replay_trace_part(row_groups: list[int], policy: Policy, path: str, maps: Mapping[str, str], split: str,
                      has_text: bool, classifier: Any = None,
                      answer_checkers: Mapping[str, Any] | None = None) -> Part:
    """Read some row groups of a Parquet trace file and replay them (runs on a worker)."""
    from cascade.replay.traces import load_traces
    clock = time.perf_counter()
    data = load_traces(path, policy, maps, split, row_groups=row_groups, has_text=has_text)
    read = time.perf_counter() - clock
    part = replay_part(policy, data, classifier, answer_checkers)
    part.timings = {"read_data": read, **part.timings}
    return part


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


def merge_data(parts: Sequence[ReplayData], template: ReplayData) -> ReplayData:
    """The partitions' data as one (``template``: sources, mappings, split and notes of the whole)."""
    first = parts[0]
    arrays = {f.name: _concat([getattr(p, f.name) for p in parts]) for f in fields(first)
              if isinstance(getattr(first, f.name), np.ndarray)}
    return replace(template, **arrays, ids=[i for p in parts for i in p.ids], dropped=sum(p.dropped for p in parts))


def merge_engine(parts: Sequence[Replayed]) -> Replayed:
    names = ("outcome", "answered", "quality_units", "cost_nano", "calls", "escalated")
    return Replayed(*(_concat([getattr(p, n) for p in parts]) for n in names),
                    unevaluated=sum((p.unevaluated for p in parts), Counter()),
                    evaluated=sum((p.evaluated for p in parts), Counter()),
                    missing_calls=sum(p.missing_calls for p in parts))


def merge_arrays(parts: Sequence[DecisionArrays]) -> DecisionArrays:
    merged = replace(parts[0], **{n: _concat([getattr(p, n) for p in parts]) for n in PER_REQUEST})
    if any(p.pin_floor is not None for p in parts):     # session pins (traces), each partition's own
        floors = [p.pin_floor if p.pin_floor is not None else np.zeros(len(p.score), np.int64) for p in parts]
        merged = replace(merged, pin_floor=_concat(floors))
    return merged


def merge(policy: Policy, label: str, parts: list[Part], template: ReplayData, full_sweep: bool,
          timings: dict[str, float]) -> Any:
    """One :class:`cascade.replay.run.ReplayRun` from the partitions, as the in-memory replay builds it."""
    from cascade.replay.run import ReplayRun
    dropped = template.dropped + sum(p.data.dropped for p in parts)
    parts = [p for p in parts if len(p.data)] or parts[:1]
    data = replace(merge_data([p.data for p in parts], template), dropped=dropped)
    if not len(data):
        raise ConfigError(f"no request to replay in split {data.split!r} of {', '.join(data.sources)}")
    for p in parts:
        for k, v in p.timings.items():
            timings[k] = round(timings.get(k, 0.0) + v, 4)
    arrays = merge_arrays([p.arrays for p in parts])
    clock = time.perf_counter()
    t2_grid = list(GRID) if full_sweep and swept_checker(policy) is not None else [arrays.t2]
    result = sweep(arrays, GRID, t2_grid)
    timings["sweep"] = round(time.perf_counter() - clock, 4)
    return ReplayRun(policy, label, data, _concat([p.scores for p in parts]), parts[0].score_source, None,
                     merge_engine([p.engine for p in parts]), arrays, result, full_sweep, timings)


# ---- scores kept across partitions (one process) -------------------------------------------------------
MEMO_LIMIT = 500_000        # texts / pairs remembered (about 100 bytes each)


def _digest(*texts: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.digest()


class _Memo:
    """Scores of texts (or pairs) already scored, by digest; at most ``MEMO_LIMIT`` of them. The scorers'
    batch scores do not depend on the batch (each row is scored alone), so a remembered score is the score."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.table = inner, {}

    def __getattr__(self, name: str) -> Any:          # name, judges...: the wrapped scorer's
        return getattr(self.__dict__["inner"], name)

    def _scored(self, keys: list[bytes], score: Callable[[list[int]], Any]) -> np.ndarray:
        missing = [i for i, k in enumerate(keys) if k not in self.table]
        fresh = np.asarray(score(missing), dtype=np.float64) if missing else np.zeros(0)
        found = dict(zip((keys[i] for i in missing), fresh.tolist()))
        if len(self.table) < MEMO_LIMIT:
            self.table.update(found)
        return np.array([found[k] if k in found else self.table[k] for k in keys], dtype=np.float64)


class MemoClassifier(_Memo):
    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        return self._scored([_digest(t) for t in texts], lambda rows: self.inner.score([texts[i] for i in rows]))


class MemoChecker(_Memo):
    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        prompts, answers = list(prompts), list(answers)
        return self._scored([_digest(p, a) for p, a in zip(prompts, answers)],
                            lambda rows: self.inner.score([prompts[i] for i in rows], [answers[i] for i in rows]))


def remembering(policy: Policy, classifier: Any, answer_checkers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's scorers (or the given ones), each remembering what it scored across partitions."""
    from classifiers import load_answer_checker, load_classifier
    artifacts = {str(c.param("artifact", "default")) for r in policy.escalation.ladders["text"]
                 for c in policy.checks_for(r) if c.name == CHECKER}
    given = dict(answer_checkers or {})
    checkers = {a: MemoChecker(given.get(a) or load_answer_checker(a)) for a in artifacts}
    return {"classifier": MemoClassifier(classifier or load_classifier(policy.routing.classifier)),
            "answer_checkers": {**given, **checkers}}


# ---- engines -----------------------------------------------------------------------------------------
@contextmanager
def mapper(engine: str, address: str | None = None, workers: int = 2) -> Iterator[Callable[..., list]]:
    """``map(fn, items, **kwargs) -> results in order`` on the chosen engine."""
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "local":
        yield lambda fn, items, **kw: [fn(item, **kw) for item in items]
        return
    if engine == "ray":
        with ray_mapper(address, workers) as run:
            yield run
        return
    from cascade.extras import require
    require("distributed", "--engine dask")
    from distributed import Client, LocalCluster
    with ExitStack() as stack:
        if address:
            client = stack.enter_context(Client(address))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None))
            client = stack.enter_context(Client(cluster))

        def run(fn: Callable[..., Any], items: Sequence[Any], **kw: Any) -> list:
            futures = client.map(fn, list(items), pure=False, **kw)
            return client.gather(futures)
        yield run


@contextmanager
def ray_mapper(address: str | None = None, workers: int = 2) -> Iterator[Callable[..., list]]:
    """``map`` as Ray tasks of one CPU each: on the cluster at ``address`` (``ray://host:10001``, or
    ``auto``), else on a Ray started here with ``workers`` CPUs (shut down at the end; a Ray already
    running in this process is used as it is)."""
    from cascade.extras import require
    ray = require("ray", "--engine ray")
    started = not ray.is_initialized()
    if started and address:                  # an existing cluster takes no resource options
        ray.init(address=address, log_to_driver=False)
    elif started:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        def run(fn: Callable[..., Any], items: Sequence[Any], **kw: Any) -> list:
            task = ray.remote(num_cpus=1)(fn)
            return ray.get([task.remote(item, **kw) for item in items])
        yield run
    finally:
        if started:
            ray.shutdown()


def _template(datas: Sequence[ReplayData], sources: list[str], mappings: list[dict], split: str,
              notes: list[str]) -> ReplayData:
    return replace(datas[0], sources=tuple(sources), mappings=tuple(mappings), split=split, notes=notes, dropped=0)


def partition_rows(n: int, rows: int) -> list[np.ndarray]:
    """Boolean masks of consecutive slices of ``rows`` requests."""
    out = []
    for start in range(0, max(n, 1), rows):
        mask = np.zeros(n, dtype=bool)
        mask[start:start + rows] = True
        out.append(mask)
    return out


def _data_part(data: ReplayData, policy: Policy, classifier: Any = None,
               answer_checkers: Mapping[str, Any] | None = None) -> Part:
    return replay_part(policy, data, classifier, answer_checkers)


def run_parts(policy: Policy, label: str, *, data: ReplayData | None = None, folders: Sequence[str | Path] = (),
              traces: str | Path | None = None,
              maps: Mapping[str, str] | None = None, split: str = "test", full_sweep: bool = False,
              engine: str = "local", address: str | None = None, chunk_rows: int | None = None,
              spill_dir: str | Path | None = None, workers: int = 2, classifier: Any = None,
              answer_checkers: Mapping[str, Any] | None = None) -> Any:
    """Replay ``data`` (rows already read), outcome ``folders`` (cut into partition folders) or a Parquet
    trace file (``traces``: partitions of row groups) by partitions."""
    from cascade.replay.spill import PART_ROWS, spill_folder
    rows = int(chunk_rows or PART_ROWS)
    if rows < 1:
        raise ConfigError(f"--chunk-rows {rows}: must be at least 1")
    timings: dict[str, float] = {}
    scorers = {"classifier": classifier, "answer_checkers": answer_checkers}
    groups, has_text = None, True
    if traces is not None:
        from cascade.replay.traceparquet import row_group_parts
        groups, has_text = row_group_parts(Path(traces), rows)
    if engine == "local" and has_text and (data is None or data.prompts is not None):
        scorers = remembering(policy, classifier, answer_checkers)
    with mapper(engine, address, workers) as run, ExitStack() as stack:
        if groups is not None:
            parts = run(replay_trace_part, groups, policy=policy, path=str(traces), maps=dict(maps or {}),
                        split=split, has_text=has_text, **scorers)
            return _merge_traces(policy, label, parts, str(traces), split, full_sweep, timings)
        if data is not None:
            pieces = [replace(data.subset(m), dropped=0, notes=[]) for m in partition_rows(len(data), rows)]
            parts = run(_data_part, pieces, policy=policy, **scorers)
            template = replace(_template([data], list(data.sources), list(data.mappings), data.split, list(data.notes)),
                               dropped=data.dropped)
            return merge(policy, label, parts, template, full_sweep, timings)
        out = Path(spill_dir) if spill_dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="replay-")))
        clock = time.perf_counter()
        dirs = [[str(d) for d in spill_folder(Path(f), i, policy, maps or {}, split, out, rows)]
                for i, f in enumerate(folders)]
        timings["partition"] = round(time.perf_counter() - clock, 4)
        flat = [d for ds in dirs for d in ds]
        parts = run(replay_folder_part, flat, policy=policy, maps=dict(maps or {}), **scorers)
        return _merge_folders(policy, label, parts, dirs, folders, split, full_sweep, timings)


def _merge_folders(policy: Policy, label: str, parts: list[Part], dirs: list[list[str]],
                   folders: Sequence[str | Path], split: str, full_sweep: bool, timings: dict[str, float]) -> Any:
    """Merge the partitions of several folders: each partition's source index is its folder's."""
    notes, mappings, k = [], [], 0
    want_text = policy_needs_responses(policy)
    for i, (folder, ds) in enumerate(zip(folders, dirs)):
        mine = parts[k:k + len(ds)]
        k += len(ds)
        for p in mine:
            p.data.source = np.full(len(p.data), i, dtype=np.int16)
        whole = merge_data([p.data for p in mine], mine[0].data)
        notes += folder_notes(Path(folder).name, whole, want_text and not (Path(folder) / "responses.parquet").is_file())
        mappings.append(dict(mine[0].data.mappings[0]))
    if not want_text:
        notes.append("no check of the policy reads the answer text: responses.parquet not read")
    template = _template([parts[0].data], [str(f) for f in folders], mappings, split, notes)
    return merge(policy, label, parts, template, full_sweep, timings)


def _merge_traces(policy: Policy, label: str, parts: list[Part], path: str, split: str, full_sweep: bool,
                  timings: dict[str, float]) -> Any:
    """Merge the partitions of a trace file: a "never calls" note holds for the file when it holds for
    every partition; the other notes are the same in each."""
    if not sum(len(p.data) for p in parts) and split == "all":
        raise ConfigError(f"{path}: the trace file holds no request", source=path)
    never = [n for n in parts[0].data.notes if all(n in p.data.notes for p in parts)]
    template = _template([parts[0].data], [path], [dict(parts[0].data.mappings[0])], split, never)
    return merge(policy, label, parts, template, full_sweep, timings)
