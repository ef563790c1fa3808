"""The boosted-tree answer checker: (prompt, answer) -> P(answer inadequate), rules included.

Two stages, both numpy only at inference:

1. *Text heads*: ridge regressions over the answer's hashed n-grams and dense columns (the
   answer's structure, the prompt's structure and the rule signals of
   :data:`classifiers.checker.EXTRA_NAMES`), e.g. the quality gain of escalating and the answer's
   wrongness. Each head is linear, stored as one weight per hash bucket plus dense weights.
2. *Trees*: a gradient-boosted ensemble (:class:`classifiers.trees.TreeEnsemble`) over
   ``[head values, dense columns, answer signals]`` (:mod:`classifiers.signals`: hedging words,
   whether the chosen option's text / number appears in the reasoning...), so interactions
   (a hedge in a long numeric answer, a number that matches no option) count.

The trees are trained on multiple-choice prompts only (the signals are about options). Other
prompts (open questions, code) are scored by ``fallback``, a linear stack over the same answer
features (the model of :class:`classifiers.checker.LinearAnswerChecker`, trained the same way),
so a short, plain answer to an open question is not judged by trees that never saw one. A failed rule (empty answer,
refusal, multiple-choice answer with no extractable choice, numeric or output-prediction answer with no final answer)
sets the score to 1.0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from classifiers.base import check_pairs
from classifiers.checker import EXTRA_NAMES, extra_columns, rules_failed
from classifiers.features import STRUCT_NAMES, FeatureSpec, chunks
from classifiers.linear import LinearStack, sigmoid
from classifiers.answer_scan import choice_and_letters
from classifiers.signals import SIGNAL_NAMES, Scan, signal_matrix
from classifiers.trees import TreeEnsemble

MODEL = "tree-checker-v1"
#: dense columns of the heads: the answer's structure, then the extra (prompt + rule) columns
DENSE_NAMES: tuple[str, ...] = STRUCT_NAMES + EXTRA_NAMES
_MC_COL = len(STRUCT_NAMES) * 2  # multiple_choice
_RULE_COLS = slice(_MC_COL + 1, _MC_COL + 4)  # no_choice, empty, refusal
_EXTRA_MC = _MC_COL - len(STRUCT_NAMES)       # the same columns in extra_columns() (no answer structure)


@dataclass(frozen=True)
class TextHeads:
    """H linear heads over the answer: ``head = hashed(answer) @ tables[h] + dense @ dense_coef[h] + bias[h]``
    (the training standardisation of the dense columns is folded into ``dense_coef`` and ``bias``)."""

    spec: FeatureSpec
    names: tuple[str, ...]
    tables: np.ndarray      # (H, 2**bits)
    dense_coef: np.ndarray  # (H, len(DENSE_NAMES))
    bias: np.ndarray        # (H,)

    def __post_init__(self) -> None:
        h = len(self.names)
        if self.tables.shape != (h, self.spec.n_buckets) or self.dense_coef.shape != (h, len(DENSE_NAMES)) \
                or self.bias.shape != (h,):
            raise ValueError("text head arrays do not match the head names and features")
        if not (np.all(np.isfinite(self.tables)) and np.all(np.isfinite(self.dense_coef))):
            raise ValueError("text head weights must be finite")

    def values(self, answers: Sequence[str], extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(head values (n, H), dense columns (n, len(DENSE_NAMES))) of the answers."""
        heads = np.empty((len(answers), len(self.names)))
        dense = np.empty((len(answers), len(DENSE_NAMES)))
        for off, batch in chunks(answers, self.spec):
            rows = slice(off, off + batch.n)
            dense[rows] = np.hstack([batch.struct(), extra[rows]])
            for h, table in enumerate(self.tables):
                heads[rows, h] = batch.hashed_sum(table)
        heads += dense @ self.dense_coef.T + self.bias
        return heads, dense


class TreeAnswerChecker:
    """Trained answer checker (:class:`classifiers.base.AnswerChecker`): text heads -> trees for
    multiple-choice prompts, the linear ``fallback`` for the others."""

    def __init__(self, heads: TextHeads, trees: TreeEnsemble, name: str = "tree-checker",
                 fallback: LinearStack | None = None) -> None:
        if trees.n_features != len(heads.names) + len(DENSE_NAMES) + len(SIGNAL_NAMES):
            raise ValueError("tree inputs do not match the text heads, dense columns and signals")
        if fallback is not None and fallback.struct_mean.shape[0] != len(DENSE_NAMES):
            raise ValueError("the fallback's dense columns do not match DENSE_NAMES")
        self.heads, self.trees, self.name, self.fallback = heads, trees, name, fallback
        # lexicon signals no split reads (a leaf's infinite threshold reads none): not counted at all
        split_on = set(trees.feature[np.isfinite(trees.threshold)].tolist())
        first = len(heads.names) + len(DENSE_NAMES)
        self.unread_signals = frozenset(s for k, s in enumerate(SIGNAL_NAMES)
                                        if s.startswith("lex_") and first + k not in split_on)

    def inputs(self, prompts: Sequence[str], answers: Sequence[str],
               extra: np.ndarray | None = None, scans: Sequence[Scan] | None = None) -> np.ndarray:
        """The tree input matrix of the pairs: [head values, dense columns, signals] (the lexicon signals
        no tree splits on are 0.0)."""
        extra = extra_columns(prompts, answers, scans) if extra is None else extra
        heads, dense = self.heads.values(answers, extra)
        return np.hstack([heads, dense, signal_matrix(prompts, answers, self.unread_signals, scans)])

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        if isinstance(prompts, str) or isinstance(answers, str):
            raise TypeError("score() takes sequences; use score_one() for one pair")
        prompts, answers = list(prompts), list(answers)
        check_pairs(prompts, answers)
        if not prompts:
            return np.zeros(0)
        scans = [choice_and_letters(a) for a in answers]      # shared by the rule columns and the signals
        extra = extra_columns(prompts, answers, scans)
        # only the rows the trees score pay for the text heads and signals
        treed = extra[:, _EXTRA_MC] != 0 if self.fallback is not None else np.ones(len(prompts), bool)
        logits = np.empty(len(prompts))
        if treed.any():
            rows = np.flatnonzero(treed)
            logits[rows] = self.trees.raw(self.inputs([prompts[i] for i in rows], [answers[i] for i in rows],
                                                      extra[rows], [scans[i] for i in rows]))
        other = np.flatnonzero(~treed)
        if other.size == 1:          # the single-text path (one answer checked per request)
            logits[other[0]] = self.fallback.logit_one(answers[other[0]], extra[other[0]])
        elif other.size:
            logits[other] = self.fallback.logits([answers[i] for i in other], extra[other])
        scores = sigmoid(logits)
        scores[rules_failed(prompts, answers, extra)] = 1.0
        return scores

    def score_one(self, prompt: str, answer: str) -> float:
        return float(self.score([prompt], [answer])[0])

    def to_artifact(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        tree_meta, tree_arrays = self.trees.to_artifact()
        meta = {"model": MODEL, "features": self.heads.spec.to_json(), "head_names": list(self.heads.names),
                "dense_names": list(DENSE_NAMES), "signal_names": list(SIGNAL_NAMES), "trees": tree_meta}
        arrays = {"head_tables": self.heads.tables, "head_dense_coef": self.heads.dense_coef,
                  "head_bias": self.heads.bias, **tree_arrays}
        if self.fallback is not None:
            meta["fallback"], sub = self.fallback.to_artifact()
            arrays.update({f"fallback_{k}": v for k, v in sub.items()})
        return meta, arrays

    @classmethod
    def from_artifact(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "TreeAnswerChecker":
        if tuple(meta["signal_names"]) != SIGNAL_NAMES or tuple(meta["dense_names"]) != DENSE_NAMES:
            raise ValueError("artifact's signal / dense columns differ from this version's")
        heads = TextHeads(spec=FeatureSpec.from_json(meta["features"]), names=tuple(meta["head_names"]),
                          tables=np.ascontiguousarray(arrays["head_tables"], dtype=np.float64),
                          dense_coef=np.asarray(arrays["head_dense_coef"], dtype=np.float64),
                          bias=np.asarray(arrays["head_bias"], dtype=np.float64))
        fallback = None
        if meta.get("fallback") is not None:
            fallback = LinearStack.from_artifact(meta["fallback"], {k: arrays[f"fallback_{k}"] for k in LinearStack.ARRAYS})
        return cls(heads, TreeEnsemble.from_artifact(meta["trees"], arrays), name=str(meta.get("name", "tree-checker")),
                   fallback=fallback)
