"""The answer checker per answer kind, in its training folder and on a folder it never saw.

    .venv/bin/python benchmarks/bench_checker_kinds.py [--cache DIR]

Only two folders hold answer texts (responses.parquet): mmlu_pro (multiple choice that reasons before
its letter) and routerbench_subset (ARC and Winogrande: a bare letter; MBPP: code). For each folder
and answer kind of its cheap model's answers (classifiers.extract.prompt_kind; ``choice`` split by
whether the answer reasons, >= CHECKER_MIN_WORDS words, which is what the shipped checker judges):

  shipped    the shipped checker's raw score (trained on the train splits of both folders: in-folder)
  held out   the same recipe (classifiers.training.train_checker.train_tree_checker) trained on the
             OTHER folder's train split only (leave-one-folder-out; cached in --cache)

Columns, on the TEST split of the kind: rows, APGR of escalating the cheap answers in checker order
(0.5 = random), AUROC of the score for "the strong model scores higher", and the threshold with the
largest gain over random routing at the same strong share chosen on the CALIBRATION split of the kind,
applied to test: quality kept (% of always-strong), strong share, random's quality at that share.
Last, per kind (every split): the non-empty answers a rule fails and both models' scores on them.
A threshold of 1.000 means only those (scored 1.0 by the rules) are worth escalating.
A kind is worth judging (instead of abstaining) only when, on at least MIN_DECIDE test answers, the
checker ranks better than random (APGR > 0.5) and its calibrated threshold beats random on test.
The held-out recipe cannot be fitted without mmlu_pro: its trees learn multiple-choice answers that
reason, and RouterBench has none.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifiers import load_answer_checker  # noqa: E402
from classifiers import metrics as M  # noqa: E402
from classifiers.extract import CHECKER_MIN_WORDS, prompt_kind  # noqa: E402
from classifiers.rules import rule_failure  # noqa: E402
from classifiers.training.data import load_dataset, load_responses  # noqa: E402

from benchmarks.bench_agreement import auroc, unwrap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = ROOT.parent / "shared" / "data"
FOLDERS = ("mmlu_pro", "routerbench_subset")
SHIPPED = ROOT / "classifiers" / "artifacts" / "answer_checker.json"
MIN_ROWS = 30
#: fewer test answers than this in a kind: too few to decide that the checker judges it
MIN_DECIDE = 100


def answer_kind(prompt: str, answer: str) -> str:
    kind = prompt_kind(prompt)
    if kind == "choice":
        return "choice, reasons" if len(answer.split()) >= CHECKER_MIN_WORDS else "choice, bare"
    return kind


def folder_rows(folder: Path) -> dict[str, np.ndarray | list]:
    data = load_dataset(folder).with_pair()
    texts = load_responses(folder, data, data.cheap)
    keep = np.array([t is not None for t in texts]) & ~np.isnan(data.score_of(data.cheap)) \
        & ~np.isnan(data.score_of(data.strong))
    idx = np.flatnonzero(keep)
    answers = [unwrap(texts[i]) or "" for i in idx]
    prompts = [data.prompts[i] for i in idx]
    return {"prompts": prompts, "answers": answers, "kind": np.array([answer_kind(p, a) for p, a in zip(prompts, answers)]),
            "split": data.split_names()[idx], "q_cheap": data.score_of(data.cheap)[idx],
            "q_strong": data.score_of(data.strong)[idx]}


def held_out_checker(name: str, cache: Path):
    """The checker recipe trained on every folder but ``name`` (cached); None when the recipe cannot be
    fitted there (its trees learn multiple-choice answers that pass the rules: RouterBench has none
    that reason)."""
    from classifiers.training.train_checker import train_tree_checker
    path = cache / f"checker-without-{name}.json"
    if not path.exists():
        try:
            train_tree_checker([DATA_ROOT / f for f in FOLDERS if f != name], out=path)
        except ValueError as exc:
            print(f"{name}: no held-out checker ({exc})")
            return None
    return load_answer_checker(path)


def best_threshold(scores: np.ndarray, qc: np.ndarray, qs: np.ndarray) -> float:
    """The threshold (escalate score >= t) with the largest quality gain over random at the same share."""
    best, best_gain = np.inf, 0.0
    for t in np.unique(np.quantile(scores, np.linspace(0, 1, 41))):
        esc = scores >= t
        share = esc.mean()
        gain = np.where(esc, qs, qc).mean() - (qc.mean() + share * (qs.mean() - qc.mean()))
        if gain > best_gain + 1e-12:
            best, best_gain = float(t), gain
    return best


def report(label: str, scores: np.ndarray, rows: dict, kind: str) -> str:
    k = rows["kind"] == kind
    cal, test = k & (rows["split"] == "calibration"), k & (rows["split"] == "test")
    qc, qs = rows["q_cheap"], rows["q_strong"]
    area = auroc(scores[test], (qs > qc)[test])
    t = best_threshold(scores[cal], qc[cal], qs[cal])
    esc = scores[test] >= t
    q = np.where(esc, qs[test], qc[test]).mean() / qs[test].mean()
    share = esc.mean()
    rand = (qc[test].mean() + share * (qs[test].mean() - qc[test].mean())) / qs[test].mean()
    ranking = M.apgr(scores[test], qc[test], qs[test])
    if test.sum() < MIN_DECIDE:
        verdict = f"too few answers to decide (< {MIN_DECIDE})"
    else:
        verdict = "judges" if q > rand + 1e-9 and ranking > 0.5 else "abstain (not better than random)"
    return (f"  {label:9s} APGR {ranking:.3f}  AUROC {area:.3f}  "
            f"t {t:.3f}: {q:.1%} kept at {share:.1%} strong, random {rand:.1%}  -> {verdict}")


def rule_line(rows: dict, kind: str) -> str:
    """The kind's non-empty answers (every split) that fail a rule (no stated letter, refusal): how many, and
    the cheap and strong models' mean scores on them -- what escalating on the rules alone recovers."""
    k = np.flatnonzero(rows["kind"] == kind)
    failed = [i for i in k if rows["answers"][i].strip() and rule_failure(rows["prompts"][i], rows["answers"][i])]
    if not failed:
        return "  rules     no non-empty answer of this kind fails a rule"
    return (f"  rules     {len(failed)} non-empty answers of {len(k)} fail a rule (all splits): cheap scores "
            f"{rows['q_cheap'][failed].mean():.2f}, strong {rows['q_strong'][failed].mean():.2f} there")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cascade-checker-lofo")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    shipped = load_answer_checker(SHIPPED)
    for name in FOLDERS:
        rows = folder_rows(DATA_ROOT / name)
        scored = {"shipped": shipped.score(rows["prompts"], rows["answers"])}
        held_out = held_out_checker(name, args.cache)
        if held_out is not None:
            scored["held out"] = held_out.score(rows["prompts"], rows["answers"])
        for kind in sorted(set(rows["kind"])):
            n = int(((rows["kind"] == kind) & (rows["split"] == "test")).sum())
            if n < MIN_ROWS:
                continue
            print(f"{name} / {kind}: {n} test answers, cheap right "
                  f"{rows['q_cheap'][(rows['kind'] == kind) & (rows['split'] == 'test')].mean():.1%}")
            for label, scores in scored.items():
                print(report(label, scores, rows, kind))
            print(rule_line(rows, kind))


if __name__ == "__main__":
    main()
