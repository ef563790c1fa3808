"""Pickle-free artifacts: ``<stem>.json`` (metadata) beside ``<stem>.npz`` (arrays).

The JSON holds ``format`` (:data:`FORMAT`), ``kind`` (``classifier`` or ``answer_checker``),
``model`` (which scorer class reads it), the featuriser's parameters and whatever the model card
needs (data, splits, metrics). The npz holds plain numeric arrays only and is read with
``allow_pickle=False``. Reading needs numpy and the standard library, never scikit-learn.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from policies.errors import ConfigError

FORMAT = "deepseek-cascade/scorer-v1"
KINDS = ("classifier", "answer_checker")


def artifact_paths(path: str | Path) -> tuple[Path, Path]:
    """The (json, npz) pair an artifact path names: the .json, the .npz, their stem, or a dir."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.json"
    if p.suffix in (".json", ".npz"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".json"), p.with_name(p.name + ".npz")


def write_artifact(path: str | Path, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``meta`` and ``arrays``; return the JSON path. ``meta`` must name ``kind`` and ``model``."""
    json_path, npz_path = artifact_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": FORMAT, **meta}
    for key in ("kind", "model"):
        if key not in body:
            raise ValueError(f"artifact metadata needs {key!r}")
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; artifacts hold numeric arrays only")
    np.savez_compressed(npz_path, **{k: np.asarray(v) for k, v in arrays.items()})
    json_path.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return json_path


def read_artifact(path: str | Path, label: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read an artifact's metadata and arrays; :class:`ConfigError` (naming the path) on any fault."""
    json_path, npz_path = artifact_paths(path)
    where = label if label is not None else str(path)
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ConfigError(f"cannot read scorer artifact {where!r} ({json_path}): {exc}",
                          source=str(json_path), errors=[("artifact", str(exc))]) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"scorer artifact {where!r} ({json_path}) is not in format {FORMAT!r}",
                          source=str(json_path), errors=[("format", "unexpected format")])
    return meta, arrays


def read_scorer(path: str | Path, kind: str, label: str | None = None) -> Any:
    """Build the classifier or answer checker stored at ``path``; it must be of ``kind``."""
    meta, arrays = read_artifact(path, label)
    where = label if label is not None else str(path)
    if meta.get("kind") != kind:
        raise ConfigError(f"scorer artifact {where!r} holds a {meta.get('kind')!r}, not a {kind!r}",
                          source=str(path), errors=[("kind", f"expected {kind!r}")])
    factory = _READERS.get((kind, meta.get("model")))
    if factory is None:
        raise ConfigError(f"scorer artifact {where!r}: unknown model {meta.get('model')!r}",
                          source=str(path), errors=[("model", "unknown model")])
    meta["_folder"] = str(artifact_paths(path)[0].resolve().parent)     # where relative references start
    try:
        return factory(meta, arrays)
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"scorer artifact {where!r} is malformed: {exc!r}",
                          source=str(path), errors=[("arrays", repr(exc))]) from exc


def _linear_classifier(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from classifiers.linear import LinearClassifier
    return LinearClassifier.from_artifact(meta, arrays)


def _linear_checker(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from classifiers.checker import LinearAnswerChecker
    return LinearAnswerChecker.from_artifact(meta, arrays)


def _gated_classifier(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from classifiers.gated import GatedLinearClassifier
    return GatedLinearClassifier.from_artifact(meta, arrays)


def _tree_checker(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from classifiers.tree_checker import TreeAnswerChecker
    return TreeAnswerChecker.from_artifact(meta, arrays)


def _adapted(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    from classifiers.adapted import read_adapted
    folder = meta.get("_folder")
    return read_adapted(meta, arrays, Path(folder) if folder else None)


#: (kind, model) -> reader; explicit, so an artifact cannot name arbitrary code.
_READERS = {
    ("classifier", "linear-hashed-v1"): _linear_classifier,
    ("classifier", "gated-linear-v1"): _gated_classifier,
    ("answer_checker", "linear-hashed-v1"): _linear_checker,
    ("answer_checker", "tree-checker-v1"): _tree_checker,
    ("classifier", "adapted-v1"): _adapted,
    ("answer_checker", "adapted-v1"): _adapted,
}
