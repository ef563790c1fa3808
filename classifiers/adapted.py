"""Scorers adapted to a deployment's own traffic (``cascade train --traces``): a linear stack over the
text's hashed and structural features plus the shipped scorer's logit as one more dense column, so
training starts from the shipped model (warm start by stacking) and learns what the traffic says on top.

    AdaptedClassifier   P(strong model needed | prompt)          base: a classifier name or artifact
    AdaptedChecker      P(answer inadequate | prompt, answer)    base: an answer-checker name or artifact

Artifact ``model: adapted-v1`` (:mod:`classifiers.artifact`): the stack's arrays, ``base`` (the base
scorer's name, or its artifact path relative to this artifact's folder) and, for a checker, the
dense column names. Inference is numpy only.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.features import STRUCT_NAMES
from classifiers.linear import LinearStack, sigmoid

MODEL = "adapted-v1"
CLASSIFIER_EXTRA = ("base_logit",)
CHECKER_EXTRA = ("base_logit", "kind_choice", "kind_number", "kind_code", "kind_text", "has_final_answer",
                 "log_answer_words")
_EDGE = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EDGE, 1 - _EDGE)
    return np.log(p / (1 - p))


def checker_extra(prompts: Sequence[str], answers: Sequence[str], base_scores: np.ndarray) -> np.ndarray:
    """The checker's dense columns beside the answer's structural features (:data:`CHECKER_EXTRA`)."""
    from classifiers.extract import extract, prompt_kind
    rows = []
    for prompt, answer, base in zip(prompts, answers, logit(base_scores)):
        kind = prompt_kind(prompt)
        final = extract(answer, "auto", prompt) if answer else None
        rows.append([base, kind == "choice", kind == "number", kind == "code", kind == "text", final is not None,
                     math.log1p(len(answer.split()))])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(CHECKER_EXTRA))


def resolve_base(ref: str, folder: Path | None) -> str:
    """A base given as a relative artifact path is relative to the adapted artifact's folder."""
    if folder is not None and ("/" in ref or ref.endswith((".json", ".npz"))) and not Path(ref).is_absolute():
        return str((folder / ref).resolve())
    return ref


class AdaptedClassifier:
    def __init__(self, stack: LinearStack, base: Any, base_ref: str, name: str = "adapted") -> None:
        if stack.struct_mean.shape[0] != len(STRUCT_NAMES) + len(CLASSIFIER_EXTRA):
            raise ValueError("an adapted classifier's dense features are the structural ones and the base logit")
        self.stack, self.base, self.base_ref, self.name = stack, base, base_ref, name

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        base = logit(self.base.score(list(texts))).reshape(-1, 1)
        return self.stack.logits(list(texts), base)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("score() takes a sequence of texts; use score_one() for one text")
        return sigmoid(self.logits(texts))

    def score_one(self, text: str) -> float:
        return float(self.score([text])[0])

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.stack.to_artifact()
        return {**meta, "model": MODEL, "kind": "classifier", "base": self.base_ref, "name": self.name,
                "extra": list(CLASSIFIER_EXTRA)}, arrays


class AdaptedChecker:
    """``kinds``: the answer kinds it had labels for; it judges only those (``judges``) and an
    answer_checker check abstains on the rest (None, an artifact written before kinds: every kind)."""

    def __init__(self, stack: LinearStack, base: Any, base_ref: str, name: str = "adapted-checker",
                 kinds: Sequence[str] | None = None) -> None:
        if stack.struct_mean.shape[0] != len(STRUCT_NAMES) + len(CHECKER_EXTRA):
            raise ValueError("an adapted checker's dense features do not match CHECKER_EXTRA")
        self.stack, self.base, self.base_ref, self.name = stack, base, base_ref, name
        self.kinds = None if kinds is None else tuple(kinds)
        self.judges = None if kinds is None else self._judges

    def _judges(self, prompt: str | None, answer: str | None) -> bool:
        """The kinds it learned, and on any kind an answer failing a rule (it scores that 1.0)."""
        from classifiers.extract import prompt_kind
        from classifiers.rules import rule_failure
        if not answer:
            return False
        return prompt_kind(prompt) in (self.kinds or ()) or rule_failure(prompt or "", answer) is not None

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """The stack's score; 1.0 where the answer fails a rule (empty, a refusal, no stated letter,
        number or output), as the shipped checkers score it."""
        from classifiers.rules import rule_failure
        if isinstance(prompts, str) or isinstance(answers, str):
            raise TypeError("score() takes sequences; use score_one() for one pair")
        prompts, answers = list(prompts), list(answers)
        extra = checker_extra(prompts, answers, self.base.score(prompts, answers))
        scores = sigmoid(self.stack.logits(answers, extra))
        failed = np.fromiter((rule_failure(p, a) is not None for p, a in zip(prompts, answers)), dtype=bool,
                             count=len(prompts))
        scores[failed] = 1.0
        return scores

    def score_one(self, prompt: str, answer: str) -> float:
        return float(self.score([prompt], [answer])[0])

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta, arrays = self.stack.to_artifact()
        return {**meta, "model": MODEL, "kind": "answer_checker", "base": self.base_ref, "name": self.name,
                "extra": list(CHECKER_EXTRA), **({"kinds": list(self.kinds)} if self.kinds is not None else {})}, arrays


def read_adapted(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], folder: Path | None) -> Any:
    """The adapted scorer of an artifact (its base loaded through the registries)."""
    from classifiers import load_answer_checker, load_classifier
    stack = LinearStack.from_artifact(meta, arrays)
    ref = str(meta["base"])
    if meta["kind"] == "classifier":
        return AdaptedClassifier(stack, load_classifier(resolve_base(ref, folder)), ref, str(meta.get("name", "adapted")))
    kinds = meta.get("kinds")
    return AdaptedChecker(stack, load_answer_checker(resolve_base(ref, folder)), ref,
                          str(meta.get("name", "adapted-checker")), kinds=None if kinds is None else list(kinds))
