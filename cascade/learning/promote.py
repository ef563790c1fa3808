"""``cascade promote``: switch the live policy file to a trained candidate only when replay on held-out
labelled traces shows it no worse in quality and cheaper; keep what it replaced for ``--rollback``.

Both policies are replayed over the same labelled requests (:mod:`cascade.learning.labels`); per request
the difference candidate - live of quality and of cost is bootstrapped (seeded) into 95% intervals. The
candidate is promoted when the quality interval's lower bound is at least ``-quality_margin`` and the cost
interval's upper bound is below zero. Promotion copies the candidate's artifacts to
``<policy dir>/.cascade-promote/<policy name>/<stamp>/`` (with the replaced file as ``previous.yaml``),
re-points the live file at them (comments kept) and records the step in ``history.json`` there;
``--rollback`` puts the latest ``previous.yaml`` back. Every file is replaced atomically.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from policies.errors import ConfigError, PromotionRefused
from policies.loader import BUILTIN_POLICIES, load_policy

from cascade.learning.labels import read_labelled, write_lines
from cascade.learning.policy_file import atomic_write, repoint

_ARTIFACTS = ("classifier", "checker")


def versions_dir(live: Path) -> Path:
    return live.parent / ".cascade-promote" / live.stem


def replay_arrays(policy: Any, traces: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per request of ``traces``: the quality and the cost (USD) ``policy`` gets in replay."""
    from cascade.replay.run import run_replay
    from cascade.replay.traces import load_traces
    run = run_replay(policy, data=load_traces(traces, policy, {}, "all"))
    return run.engine.quality_units / 1e9, run.engine.cost_nano / 1e9


def bootstrap(diff: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean of ``diff`` and its bootstrap 95% interval (percentiles of resampled means)."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def compare(candidate: Any, live: Any, traces: Path, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    rows = read_labelled(traces, only_labelled=True)
    if not rows:
        raise ConfigError(f"{traces}: no labelled request to compare the policies on")
    with tempfile.TemporaryDirectory(prefix="cascade-promote-") as tmp:
        labelled = write_lines(rows, Path(tmp) / "labelled.jsonl")
        q_live, c_live = replay_arrays(live, labelled)
        q_cand, c_cand = replay_arrays(candidate, labelled)
    dq = bootstrap(q_cand - q_live, n_boot, seed)
    dc = bootstrap(c_cand - c_live, n_boot, seed + 1)
    return {"n": len(rows), "live": {"quality": float(q_live.mean()), "usd_per_1k": 1000 * float(c_live.mean())},
            "candidate": {"quality": float(q_cand.mean()), "usd_per_1k": 1000 * float(c_cand.mean())},
            "quality_diff": {"mean": dq[0], "ci95": [dq[1], dq[2]]},
            "usd_per_1k_diff": {"mean": 1000 * dc[0], "ci95": [1000 * dc[1], 1000 * dc[2]]}}


def promote(candidate_dir: str | Path, live_file: str | Path, traces: str | Path, *, quality_margin: float = 0.0,
            n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    live = _live_path(live_file)
    candidate_dir = Path(candidate_dir).expanduser().resolve()
    candidate = load_policy(str(candidate_dir / "policy.yaml"))
    report = compare(candidate, load_policy(str(live)), Path(traces), n_boot=n_boot, seed=seed)
    no_worse = report["quality_diff"]["ci95"][0] >= -quality_margin
    cheaper = report["usd_per_1k_diff"]["ci95"][1] < 0
    report.update(no_worse=no_worse, cheaper=cheaper, quality_margin=quality_margin)
    if not (no_worse and cheaper):
        raise _refused(report)
    report["version"] = str(_switch(candidate_dir, candidate, live))
    return report


def _refused(report: dict[str, Any]) -> PromotionRefused:
    exc = PromotionRefused(f"not promoted: {verdict(report)}")
    exc.report = report              # type: ignore[attr-defined]
    return exc


def verdict(r: dict[str, Any]) -> str:
    q, c = r["quality_diff"], r["usd_per_1k_diff"]
    return (f"quality {q['mean']:+.4f} (95% CI {q['ci95'][0]:+.4f} .. {q['ci95'][1]:+.4f}; "
            f"{'no worse' if r['no_worse'] else 'may be worse'}), $/1k {c['mean']:+.4f} (95% CI "
            f"{c['ci95'][0]:+.4f} .. {c['ci95'][1]:+.4f}; {'cheaper' if r['cheaper'] else 'not shown cheaper'}) "
            f"over {r['n']} held-out labelled requests")


def _live_path(live_file: str | Path) -> Path:
    if str(live_file) in BUILTIN_POLICIES:
        raise ConfigError(f"promote writes a policy file: give a path, not the built-in {str(live_file)!r}")
    live = Path(live_file).expanduser().resolve()
    if not live.is_file():
        raise ConfigError(f"{live}: no such policy file")
    return live


def _switch(candidate_dir: Path, candidate: Any, live: Path) -> Path:
    versions = versions_dir(live)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    version = versions / stamp
    n = 1
    while version.exists():
        n += 1
        version = versions / f"{stamp}-{n}"
    version.mkdir(parents=True)
    for name in _ARTIFACTS:
        for ext in (".json", ".npz"):
            if (candidate_dir / f"{name}{ext}").is_file():
                shutil.copy2(candidate_dir / f"{name}{ext}", version / f"{name}{ext}")
    shutil.copy2(live, version / "previous.yaml")
    checker = version / "checker.json" if (version / "checker.json").is_file() else None
    classifier = version / "classifier.json" if (version / "classifier.json").is_file() else None
    repoint(live, candidate, classifier, checker)
    history = _history(versions)
    history.append({"version": version.name, "previous": str(version / "previous.yaml")})
    atomic_write(versions / "history.json", json.dumps(history, indent=1).encode())
    return version


def _history(versions: Path) -> list[dict[str, Any]]:
    path = versions / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def rollback(live_file: str | Path) -> dict[str, Any]:
    """Put back the policy file the latest promotion replaced (its artifacts were never deleted)."""
    live = _live_path(live_file)
    versions = versions_dir(live)
    history = _history(versions)
    if not history:
        raise PromotionRefused(f"nothing to roll back: {live} has no promotion on record")
    last = history.pop()
    previous = Path(last["previous"])
    load_policy(str(previous))
    atomic_write(live, previous.read_bytes())
    atomic_write(versions / "history.json", json.dumps(history, indent=1).encode())
    return {"policy_file": str(live), "restored": str(previous), "undone_version": last["version"]}
