"""Prompt classifiers and answer checkers: scorers the policy engine compares with thresholds.

Two contracts (see :mod:`classifiers.base`):

* ``Classifier.score(texts) -> P(strong model needed)``
* ``AnswerChecker.score(prompts, answers) -> P(answer inadequate)``

Load them by name or artifact path through the explicit registries below; nothing registers
itself on import. ``import classifiers`` is cheap: no numpy-heavy work, no scikit-learn, no I/O;
artifacts are read on the first ``load_*`` call for their path and cached.

Names: classifiers ``"heuristic"`` (hand-written rules), ``"default"`` (the shipped trained model,
all four data sets), ``"mmlu-pro"`` (trained on MMLU-Pro DeepSeek-V2 -> GPT-4o only: better there,
worse elsewhere), ``"by-kind"`` (``default`` with its score shifted up on the prompt kinds the
answer checker cannot judge: :mod:`classifiers.by_kind`);
answer checkers ``"rules"`` (empty / refusal / no extractable choice), ``"default"`` (the shipped
trained checker, rules included). Anything else is taken as a path to an artifact: a ``.json``
metadata file, its ``.npz`` sibling, their common stem, or a directory holding ``model.json``.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from policies.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from classifiers.base import AnswerChecker, Classifier

__all__ = ["ARTIFACTS_DIR", "AnswerChecker", "Classifier", "load_answer_checker", "load_classifier",
           "CLASSIFIERS", "ANSWER_CHECKERS"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
DEFAULT_CLASSIFIER = ARTIFACTS_DIR / "prompt_classifier.json"
DEFAULT_ANSWER_CHECKER = ARTIFACTS_DIR / "answer_checker.json"
MMLU_PRO_CLASSIFIER = ARTIFACTS_DIR / "prompt_classifier_mmlu_pro.json"

_cache: dict[tuple[str, Path], Any] = {}
_cache_lock = threading.Lock()


def _heuristic() -> "Classifier":
    from classifiers.heuristic import HeuristicClassifier
    return HeuristicClassifier()


def _rules() -> "AnswerChecker":
    from classifiers.rules import RuleAnswerChecker
    return RuleAnswerChecker()


def _default_classifier() -> "Classifier":
    return _load_artifact(DEFAULT_CLASSIFIER, "classifier", "default")


def _by_kind_classifier() -> "Classifier":
    from classifiers.by_kind import KindShiftedClassifier
    return KindShiftedClassifier(_default_classifier())


def _mmlu_pro_classifier() -> "Classifier":
    return _load_artifact(MMLU_PRO_CLASSIFIER, "classifier", "mmlu-pro")


def _default_answer_checker() -> "AnswerChecker":
    """The shipped checker. It learned multiple-choice answers that reason before their letter, so it
    judges only those (``judges``); an answer_checker check abstains on the rest."""
    scorer = _load_artifact(DEFAULT_ANSWER_CHECKER, "answer_checker", "default")
    if getattr(scorer, "judges", None) is None:
        from classifiers.extract import checker_judges
        scorer.judges = checker_judges
    return scorer


#: name -> factory; the names a policy file may use.
CLASSIFIERS: dict[str, Callable[[], "Classifier"]] = {
    "heuristic": _heuristic,
    "default": _default_classifier,
    "mmlu-pro": _mmlu_pro_classifier,
    "by-kind": _by_kind_classifier,
}
ANSWER_CHECKERS: dict[str, Callable[[], "AnswerChecker"]] = {
    "rules": _rules,
    "default": _default_answer_checker,
}


def load_classifier(name_or_path: str | Path) -> "Classifier":
    """Return the classifier registered under ``name_or_path``, or read from that artifact path.

    Raises :class:`policies.errors.ConfigError` (naming it) for an unknown name or an unreadable,
    malformed or wrong-kind artifact.
    """
    return _load(name_or_path, CLASSIFIERS, "classifier")


def load_answer_checker(name_or_path: str | Path) -> "AnswerChecker":
    """Return the answer checker registered under ``name_or_path``, or read from that artifact path.

    Raises :class:`policies.errors.ConfigError` like :func:`load_classifier`.
    """
    return _load(name_or_path, ANSWER_CHECKERS, "answer_checker")


def _load(name_or_path: str | Path, registry: dict[str, Callable[[], Any]], kind: str) -> Any:
    if isinstance(name_or_path, str) and name_or_path in registry:
        return registry[name_or_path]()
    text = str(name_or_path)
    if not isinstance(name_or_path, Path) and not _looks_like_path(text):
        known = ", ".join(sorted(registry))
        raise ConfigError(f"unknown {kind} {text!r}: expected one of {known} or an artifact path",
                          source=text, errors=[(kind, f"unknown name {text!r}")])
    return _load_artifact(Path(text), kind, text)


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".json", ".npz")) or Path(text).exists()


def _load_artifact(path: Path, kind: str, label: str) -> Any:
    """Read (once per resolved path and kind) the artifact at ``path``."""
    from classifiers.artifact import artifact_paths, read_scorer

    key = (kind, artifact_paths(path.expanduser())[0].resolve())
    with _cache_lock:
        if key not in _cache:
            _cache[key] = read_scorer(key[1], kind, label)
        return _cache[key]


def clear_cache() -> None:
    """Forget loaded artifacts (tests, or after retraining in place)."""
    with _cache_lock:
        _cache.clear()


def __getattr__(name: str) -> Any:  # lazy re-exports keep ``import classifiers`` light
    if name in ("Classifier", "AnswerChecker"):
        from classifiers import base
        return getattr(base, name)
    raise AttributeError(f"module 'classifiers' has no attribute {name!r}")
