"""Policy files the loop writes: a candidate that extends the policy it was trained for, and a live
file re-pointed at promoted artifacts (comments kept: ruamel round trip). Every file is written to a
temporary sibling, loaded back as a policy, then moved into place (``os.replace``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from policies.loader import BUILTIN_POLICIES, builtin_policy_path, load_policy
from policies.schema import Policy

from cascade.calibrate import round_trip_yaml, section
from cascade.replay.checks import CHECKER


def policy_source(policy_arg: str) -> Path:
    return builtin_policy_path(policy_arg) if policy_arg in BUILTIN_POLICIES else Path(policy_arg).expanduser()


def checks_with(policy: Policy, checker: Path | None) -> list[Any]:
    """The policy's escalation checks, each ``answer_checker`` pointed at ``checker`` (None: as they are)."""
    out: list[Any] = []
    for spec in policy.escalation.checks:
        params = dict(spec.params)
        if spec.name == CHECKER and checker is not None:
            params["artifact"] = str(checker)
        out.append({"name": spec.name, **params} if params else spec.name)
    return out


def write_candidate(policy_arg: str, policy: Policy, dst: Path, classifier: Path | None,
                    checker: Path | None) -> Policy:
    """``dst``: ``extends:`` the trained-for policy, with its classifier and checker replaced by the
    trained ones given (None: the policy's own, kept)."""
    base = policy_arg if policy_arg in BUILTIN_POLICIES else str(Path(policy_arg).expanduser().resolve())
    import yaml
    doc = {"extends": base, "name": f"{policy.name}-trained",
           "description": f"{policy.name} with its classifier, checker and thresholds trained on its own traces "
                          "(cascade train)",
           "routing": {"classifier": str(classifier) if classifier is not None else policy.routing.classifier},
           "escalation": {"checks": checks_with(policy, checker)}}
    return _replace(dst, yaml.safe_dump(doc, sort_keys=False))


def repoint(live: Path, candidate: Policy, classifier: Path | None, checker: Path | None) -> Policy:
    """The live file with the candidate's classifier, thresholds and checks (artifacts at the given
    paths; None: the candidate's own reference), everything else as it was."""
    text = live.read_text(encoding="utf-8")
    yaml = round_trip_yaml(text)
    doc = yaml.load(text)
    routing = section(doc, "routing", after=("catalog", "description", "name", "extends"))
    routing["classifier"] = str(classifier) if classifier is not None else candidate.routing.classifier
    routing["thresholds"] = [float(t) for t in candidate.routing.thresholds]
    escalation = section(doc, "escalation", after=("routing",))
    escalation["checks"] = checks_with(candidate, checker)
    import io
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return _replace(live, buf.getvalue())


def _replace(dst: Path, text: str) -> Policy:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp.yaml")
    try:
        tmp.write_text(text, encoding="utf-8")
        load_policy(str(tmp))                     # a file that does not load is never put in place
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return load_policy(str(dst))


def atomic_write(dst: Path, data: bytes) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
