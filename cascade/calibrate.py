"""``cascade calibrate``: choose the policy's classifier threshold (``routing.thresholds[0]``), when it
has an ``answer_checker`` check that checker's threshold and, when it has an agreement check, whether that
check runs (off / after the other checks pass / in parallel: :mod:`cascade.calibrate_joint`), jointly, on
the CALIBRATION split of recorded outcomes, for one target; report the runner-up of every other agreement
choice; write them into the policy file (comments and layout kept: ruamel.yaml
round trip); report the calibration and the TEST figures of the chosen point.

Targets: ``quality=0.95`` (share of always-strong quality: the cheapest grid point reaching it),
``strong-share=0.3`` (share of requests calling the strong model) or ``usd-per-1k=0.5`` (USD per 1,000
requests): the best quality within the limit (then the lowest cost).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from policies.errors import ConfigError
from policies.loader import BUILTIN_POLICIES, builtin_policy_path, load_policy
from policies.schema import CheckSpec, Policy, Rung

from cascade.calibrate_joint import agreement_mode, grid_points, runner_ups, variants, with_mode
from cascade.replay.checks import CHECKER, spec_key, swept_checker
from cascade.replay.progress import QUIET, Progress

TARGETS = ("quality", "strong-share", "usd-per-1k")
_EPS = 1e-12


@dataclass(frozen=True)
class Target:
    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


def parse_target(text: str) -> Target:
    kind, sep, raw = (text or "").partition("=")
    kind = kind.strip().lower().replace("_", "-")
    if not sep or kind not in TARGETS:
        raise ConfigError(f"--target {text!r}: expected quality=SHARE, strong-share=SHARE or usd-per-1k=USD "
                          "(e.g. quality=0.95)")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"--target {text!r}: {raw.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (kind != "usd-per-1k" and value > (2.0 if kind == "quality" else 1.0)) \
            or (kind == "quality" and value == 0):
        bounds = {"quality": "in (0, 2]", "strong-share": "in [0, 1]", "usd-per-1k": ">= 0"}[kind]
        raise ConfigError(f"--target {text!r}: {kind} must be {bounds}")
    return Target(kind, value)


def choose_point(quality: np.ndarray, usd_per_1k: np.ndarray, strong_share: np.ndarray, t1: np.ndarray,
                 t2: np.ndarray, valid: np.ndarray, target: Target, q_strong: float,
                 prefer: np.ndarray | None = None) -> int:
    """Index (into the flattened grid) of the point the target asks for; ConfigError if none qualifies.
    ``prefer`` (lower first) breaks ties of quality and cost before the thresholds do."""
    q, c, s = quality.ravel(), usd_per_1k.ravel(), strong_share.ravel()
    t1r, t2r = t1.ravel(), np.nan_to_num(t2.ravel(), nan=0.0)
    pref = np.zeros(q.size) if prefer is None else np.asarray(prefer).ravel()
    if target.kind == "quality":
        goal = target.value * q_strong
        ok = valid.ravel() & (q >= goal - _EPS)
        order = np.lexsort((-t2r, -t1r, pref, -q, c))      # cheapest, then best, then fewest calls
    else:
        limit = c if target.kind == "usd-per-1k" else s
        ok = valid.ravel() & (limit <= target.value + _EPS)
        order = np.lexsort((-t2r, -t1r, pref, c, -q))      # best, then cheapest
    hits = order[ok[order]]
    if hits.size == 0:
        best = valid.ravel()
        detail = (f"the best reaches {q[best].max() / q_strong:.3f} of always-strong quality" if target.kind == "quality"
                  else f"the lowest is {(c if target.kind == 'usd-per-1k' else s)[best].min():.4g}")
        raise ConfigError(f"target {target} is not reachable on the calibration split: {detail}")
    return int(hits[0])


_KEY_LINE = re.compile(r"^( *)[^\s#-][^#]*?:(\s|$)")
_DASH_LINE = re.compile(r"^( *)- ")


def _indentation(text: str) -> tuple[int, int]:
    """(mapping indent, block-sequence dash offset) the file uses: ``key:\n  sub:`` -> 2;
    ``checks:\n    - a`` under a key at column 2 -> offset 2."""
    mapping, offset = 0, None
    parent = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, dash = _KEY_LINE.match(line), _DASH_LINE.match(line)
        if dash and parent is not None and offset is None:
            offset = len(dash.group(1)) - parent
        if key:
            width = len(key.group(1))
            if width and not mapping:
                mapping = width
            parent = width if line.rstrip().endswith(":") else None
    return mapping or 2, max(offset or 0, 0)


def round_trip_yaml(text: str) -> Any:
    """A round-trip YAML that writes with the indentation the file already uses."""
    from ruamel.yaml import YAML
    mapping, offset = _indentation(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _flow(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    node = CommentedMap(value) if isinstance(value, dict) else CommentedSeq(value)
    node.fa.set_flow_style()
    return node


def _check_yaml(spec: CheckSpec, artifact: str, t2: float | None) -> Any:
    params = dict(spec.params)
    if t2 is not None and spec.name == CHECKER and str(params.get("artifact", "default")) == artifact:
        params["threshold"] = t2
    return spec.name if not params else _flow({"name": spec.name, **params})


def set_key(mapping: Any, key: str, value: Any, after: Sequence[str] = ()) -> None:
    """``mapping[key] = value``; a new key goes right after the last of ``after`` the mapping has."""
    if key in mapping:
        mapping[key] = value
        return
    keys = list(mapping)
    pos = max([keys.index(k) + 1 for k in after if k in keys], default=len(keys))
    mapping.insert(pos, key, value)


def section(doc: Any, key: str, after: Sequence[str]) -> Any:
    """The mapping ``doc[key]`` of a round-trip document, inserted empty (after ``after``) when absent."""
    from ruamel.yaml.comments import CommentedMap
    found = doc.get(key)
    if found is None:
        found = CommentedMap()
        set_key(doc, key, found, after=after)
    return found


def _update_checks(seq: Any, artifact: str, t2: float) -> bool:
    changed = False
    for i, item in enumerate(seq):
        if item == CHECKER and artifact == "default":
            seq[i] = _flow({"name": CHECKER, "threshold": t2})
            changed = True
        elif hasattr(item, "get") and item.get("name") == CHECKER and str(item.get("artifact", "default")) == artifact:
            item["threshold"] = t2
            changed = True
    return changed


def _set_checker(doc: Any, policy: Policy, t2: float) -> None:
    from ruamel.yaml.comments import CommentedMap
    swept = swept_checker(policy)
    assert swept is not None
    artifact, key = str(swept.param("artifact", "default")), spec_key(swept)
    esc = section(doc, "escalation", after=("routing", "catalog", "description", "name"))
    if any(spec_key(s) == key for s in policy.escalation.checks):
        if "checks" not in esc or not _update_checks(esc["checks"], artifact, t2):
            esc["checks"] = [_check_yaml(s, artifact, t2) for s in policy.escalation.checks]
    text_rungs: tuple[Rung, ...] = policy.escalation.ladders["text"]
    if any(spec_key(c) == key for r in text_rungs for c in (r.checks or ())):
        ladders = esc.get("ladders", {}) or {}
        items = ladders.get("text") if hasattr(ladders, "get") else None
        if items is None or not any(hasattr(i, "get") and i.get("checks") and _update_checks(i["checks"], artifact, t2)
                                    for i in items):
            ladder = [r.model if r.checks is None else
                      _flow({"model": r.model, "checks": [_check_yaml(c, artifact, t2) for c in r.checks]})
                      for r in text_rungs]
            if "ladders" not in esc:
                esc.insert(0, "ladders", CommentedMap())
            esc["ladders"]["text"] = _flow(ladder)


def _set_agreement(doc: Any, policy: Policy, mode: str) -> None:
    """The agreement check of ``escalation.checks`` set to ``mode`` in the file (the whole list is written
    when the file inherits it through ``extends``)."""
    esc = section(doc, "escalation", after=("routing", "catalog", "description", "name"))
    seq = esc.get("checks")
    for i, item in enumerate(seq or ()):
        if hasattr(item, "get") and item.get("name") == "agreement":
            if mode == "off":
                del seq[i]
            else:
                item["parallel"] = mode == "parallel"
            return
    esc["checks"] = [_check_yaml(s, "", None) for s in with_mode(policy, mode).escalation.checks]


def _fix_extends(doc: Any, src: Path, dst: Path) -> None:
    """A relative ``extends:`` still names the same file when the policy is written elsewhere."""
    ref = doc.get("extends")
    if isinstance(ref, str) and ref not in BUILTIN_POLICIES and src.parent.resolve() != dst.parent.resolve():
        base = (src.parent / ref).expanduser().resolve()
        doc["extends"] = os.path.relpath(base, dst.parent.resolve())


def write_thresholds(src: Path, dst: Path, policy: Policy, t1: float, t2: float | None,
                     agreement: str | None = None) -> Policy:
    """Write ``policy``'s file ``src`` to ``dst`` with the new thresholds (and, given ``agreement``, its
    agreement check sequential / parallel / off); validate it before replacing."""
    try:
        text = src.read_text(encoding="utf-8")
        yaml = round_trip_yaml(text)
        doc = yaml.load(text)
    except Exception as exc:  # ruamel parse errors
        raise ConfigError(f"{src}: cannot round-trip the policy file: {exc}", source=str(src)) from None
    _fix_extends(doc, src, dst)
    routing = section(doc, "routing", after=("catalog", "description", "name", "extends"))
    thresholds = [float(t1), *policy.routing.thresholds[1:]]
    current = routing.get("thresholds")
    if isinstance(current, list) and current:
        current[0] = float(t1)
    else:
        set_key(routing, "thresholds", _flow(thresholds), after=("classifier",))
    if agreement is not None and agreement != agreement_mode(policy):
        _set_agreement(doc, policy, agreement)
    if t2 is not None:
        _set_checker(doc, policy, float(t2))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.calibrate-tmp.yaml")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            yaml.dump(doc, fh)
        written = load_policy(str(tmp))
        got_t2 = swept_checker(written)
        if written.routing.thresholds[:1] != (float(t1),) or (t2 is not None and got_t2 is not None
                                                               and float(got_t2.param("threshold", 0.5)) != float(t2)):
            raise ConfigError(f"{dst}: the written policy does not carry the chosen thresholds (unexpected layout)")
        if agreement is not None and agreement_mode(written) != agreement:
            raise ConfigError(f"{dst}: the written policy does not carry the chosen agreement check ({agreement})")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return load_policy(str(dst))


def _source_path(policy_arg: str, out: str | Path | None) -> tuple[Path, Path]:
    builtin = policy_arg in BUILTIN_POLICIES
    src = builtin_policy_path(policy_arg) if builtin else Path(policy_arg).expanduser()
    if not builtin and src.is_file():
        builtin = any(src.resolve() == builtin_policy_path(b).resolve() for b in BUILTIN_POLICIES)
    if builtin and out is None:
        raise ConfigError(f"refusing to overwrite the built-in policy {policy_arg!r}: write a copy with --out PATH")
    return src, Path(out).expanduser() if out is not None else src


def calibrate(policy_arg: str, data_dirs: Sequence[str | Path], target: str, maps: Sequence[str] = (),
              out: str | Path | None = None, progress: Progress = QUIET, **scorers: Any) -> dict[str, Any]:
    """Calibrate ``policy_arg`` (a YAML path; a built-in name only with ``out``) for ``target``; write the
    thresholds; return what was chosen with the calibration and test figures (rows of the replay report).
    ``scorers``: ``classifier`` / ``answer_checkers`` overrides, as for :func:`cascade.replay.run.run_replay`."""
    from classifiers.splits import split_array
    from cascade.replay.report import build_report
    from cascade.replay.run import load_data, run_replay

    goal = parse_target(target)
    src, dst = _source_path(policy_arg, out)
    policy = load_policy(policy_arg)
    if len(policy.escalation.ladders["text"]) < 2:
        raise ConfigError(f"policy {policy.name!r}: a one-rung text ladder has no threshold to calibrate")
    data = load_data(policy, data_dirs, maps=maps, split="calibration+test", progress=progress)
    names = split_array(data.prompts or [])
    cal, test = data.subset(names == "calibration"), data.subset(names == "test")
    if not len(cal):
        raise ConfigError(f"no calibration-split prompt in {', '.join(data.sources)}")
    options = variants(policy)
    modes = [v.mode for v in options]
    runs = [run_replay(v.policy, data=cal, full_sweep=True, progress=progress, **scorers) for v in options]
    pts = grid_points([r.sweep for r in runs], policy.routing.thresholds[1] if len(policy.routing.thresholds) > 1 else None)
    q_strong = float(cal.quality[:, -1].mean())

    def choose(mask: np.ndarray) -> int:
        return choose_point(pts.quality, pts.usd_per_1k, pts.strong_share, pts.t1, pts.t2, mask, goal, q_strong,
                            prefer=pts.variant)
    k = choose(pts.valid)
    chosen = pts.point(k, modes, q_strong)
    written = write_thresholds(src, dst, policy, chosen["t1"], chosen["t2"], agreement=chosen["agreement"])
    figures = {"calibration": build_report(run_replay(written, data=cal, progress=progress, **scorers))["rows"]["policy"]}
    if len(test):
        figures["test"] = build_report(run_replay(written, data=test, progress=progress, **scorers))["rows"]["policy"]
    base = runs[modes.index(agreement_mode(policy))] if modes[0] is not None else runs[0]
    return {"policy_file": str(dst), "target": {"kind": goal.kind, "value": goal.value},
            "chosen": {"t1": chosen["t1"], "t2": chosen["t2"], "agreement": chosen["agreement"]},
            "chosen_point": chosen, "runner_ups": runner_ups(pts, k, choose, modes, q_strong),
            "previous": {"t1": base.arrays.t1, "t2": base.arrays.t2,
                         "agreement": agreement_mode(policy) if modes[0] is not None else None},
            "grid": {"t1": [float(x) for x in runs[0].sweep.t1], "t2": runs[0].sweep.t2},
            "n": {"calibration": len(cal), "test": len(test)}, **figures}
