"""Labels from the trace: shadow and feedback lines merged into the request lines they follow.

Per request, the returned answer's ``quality``: a user's feedback score when there is one, else the
shadow label (1 adequate, 0 not); each answered shadow call becomes one more attempt of the request
(``status: ok``, its cost and tokens, quality 1: the reference), so replay has both rungs' outcomes.
An exploring shadow (``explores``: the cheap rung asked about a request the strong model answered) is
the other way round: the returned answer is the reference (quality 1) and the cheap rung's answer
takes the label, as a new attempt or, when the walk had called it (``reused``), on that attempt.
``label.model`` names the model whose answer the label judges. A request without feedback or a
decided shadow label keeps no ``label``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

_ANSWERED = ("ok", "check_failed")


def merge_labels(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request lines of ``records`` with their shadow answers and labels merged in (order kept)."""
    requests: list[dict[str, Any]] = []
    shadows: dict[str, list[dict[str, Any]]] = {}
    feedback: dict[str, dict[str, Any]] = {}
    for doc in records:
        kind, rid = doc.get("kind"), doc.get("request_id")
        if kind is None:
            requests.append(doc)
        elif kind == "shadow":
            shadows.setdefault(rid, []).append(doc)
        elif kind == "feedback":
            feedback[rid] = doc                               # the latest word of the user counts
    return [labelled(doc, shadows.get(doc.get("request_id"), []), feedback.get(doc.get("request_id")))
            for doc in requests]


def labelled(doc: dict[str, Any], shadows: list[dict[str, Any]], feedback: dict[str, Any] | None) -> dict[str, Any]:
    answered = [s for s in shadows if s.get("status") == "ok"]
    if not answered and feedback is None:
        return doc
    doc = {**doc, "attempts": [dict(a) for a in doc.get("attempts", ()) if isinstance(a, dict)]}
    label = _label(answered, feedback)
    returned = returned_attempt(doc)
    explored = label is not None and label.get("explores")
    for s in answered:
        quality = _own_quality(s)
        if quality is None:
            continue                                  # an exploring answer nobody judged: no outcome
        if s.get("reused"):
            mine = [a for a in doc["attempts"] if a.get("model") == s.get("model") and a.get("status") in _ANSWERED]
            if mine:
                mine[-1]["quality"] = quality
            continue
        doc["attempts"].append({"model": s.get("model"), "status": "ok", "reason": "shadow",
                                "prompt_tokens": s.get("prompt_tokens", 0),
                                "completion_tokens": s.get("completion_tokens", 0),
                                "cost_usd": s.get("cost_usd", 0.0), "checks": [], "quality": quality, "shadow": True,
                                **({"answer": s["answer"]} if isinstance(s.get("answer"), str) else {})})
    if label is not None and returned is not None:
        returned["quality"] = 1.0 if explored else label["quality"]      # the reference, whatever its checks said
        doc["label"] = {**label, "model": label.get("model") or doc.get("model")}
    return doc


def _own_quality(shadow: dict[str, Any]) -> float | None:
    """A shadow answer's quality as an outcome: 1 (the reference) for a stronger model's; for an
    exploring (cheap) one, its label (None when undecided)."""
    if not shadow.get("explores"):
        return 1.0
    verdict = (shadow.get("label") or {}).get("adequate")
    return None if verdict is None else float(bool(verdict))


def _label(answered: list[dict[str, Any]], feedback: dict[str, Any] | None) -> dict[str, Any] | None:
    if feedback is not None and isinstance(feedback.get("score"), (int, float)):
        return {"quality": float(feedback["score"]), "source": "feedback"}
    for s in answered:
        verdict = (s.get("label") or {}).get("adequate")
        if verdict is not None:
            out = {"quality": 1.0 if verdict else 0.0, "source": (s.get("label") or {}).get("source")}
            return {**out, "explores": True, "model": s.get("model")} if s.get("explores") else out
    return None


def judged_answer(doc: dict[str, Any]) -> str | None:
    """The text of the answer a labelled request's label judges (the cheap rung's, for an exploring
    shadow; the returned one otherwise)."""
    label = doc.get("label") or {}
    if label.get("explores"):
        mine = [a for a in doc.get("attempts", ()) if a.get("model") == label.get("model")
                and a.get("status") in _ANSWERED and isinstance(a.get("answer"), str)]
        return mine[-1]["answer"] if mine else None
    returned = returned_attempt(doc) or {}
    if isinstance(returned.get("answer"), str):
        return returned["answer"]
    return doc.get("answer") if isinstance(doc.get("answer"), str) else None


def returned_attempt(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The attempt whose answer the request returned (the last answered one of the answering model)."""
    mine = [a for a in doc.get("attempts", ()) if a.get("model") == doc.get("model") and a.get("status") in _ANSWERED
            and not a.get("shadow")]
    return mine[-1] if mine else None


def read_labelled(path: str | Path, *, only_labelled: bool = False) -> list[dict[str, Any]]:
    """The request lines of a trace file with labels merged (``only_labelled``: those with a label)."""
    with open(path, encoding="utf-8") as fh:
        rows = merge_labels(json.loads(line) for line in fh if line.strip())
    return [r for r in rows if "label" in r] if only_labelled else rows


def write_lines(rows: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Rows as a JSONL trace file (labels merged: replay reads them as they are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=True, default=str) + "\n")
    return path
