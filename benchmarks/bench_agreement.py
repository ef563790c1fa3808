"""Second opinion (agreement of two cheap models' final answers) against the answer checker.

    .venv/bin/python benchmarks/bench_agreement.py [--split test] [--data DIR ...]

For every data folder with recorded answers (responses.parquet), its natural cheap -> strong pair
(meta.json) and each second cheap model with answers there, on the held-out split
(classifiers.splits; ``--split calibration`` to look at the split choices are made on), per
answer kind of the prompt (classifiers.extract.prompt_kind: choice / number / code / text):

  checker            escalate when the shipped answer checker's P(inadequate) >= T (T: the
                     answer_checker threshold of the built-in default policy)
  checker*           the same, the checker abstaining (passing) outside its training kind: it
                     judges only multiple-choice answers with reasoning (>= REASONED_WORDS words)
  agree              both cheap models called; accept the cheap answer when the second model's
                     final answer (classifiers.extract.agree, kind auto) is the same, else escalate;
                     where it cannot judge (an extraction failed): escalate
  agree, ?->checker  the same, the checker deciding where agreement cannot judge
  rules, agree       escalate when the cheap answer fails a rule (classifiers.rules: empty, refusal,
                     multiple choice with no "answer is (X)" / "Answer: X" / bare letter), else
                     agree (the second model called only when the rules pass)
  agree AND checker  accept only when both pass (the second model called only when the checker
                     passes, as ``parallel: false`` does)
  rules, agree, ?->chk*   rules, agree, and checker* where agreement cannot judge; on code
                          prompts the second model is not called (auto cannot judge code)
  rules, agree, checker*  accept only when the rules, agreement and checker* all pass
  agree OR checker   accept when either passes (the second model called only when the checker fails)
  second alone       not a cascade: the second cheap model answers everything

Only prompts where the pair and every second model have an answer and a score (MMLU-Pro:
DeepSeek-Coder-V2 answered 9,396 of the 10,683 prompts); kinds with fewer than MIN_ROWS prompts
in the split are left out. Columns: quality as % of always-strong's, cost as % of always-strong's
(every call paid: the cheap one, the second one when made, the strong one when escalated), share
sent to the strong model, and random routing's quality (expected) at the same strong share and at
the same cost. Where the folder has the benchmark's own extracted answers (answers.parquet): how
many accepted cheap answers score 0 only because that scorer found no final answer in them.
Then, where agreement cannot judge: how often, how good the cheap answers are there, and the
fallbacks; then the checker per answer kind: AUROC, how many correct / wrong cheap answers it
flags at T, and the threshold with the largest gain over random at the same share, chosen on
the calibration split ("abstains" when none beats random there). Last, one summary row per
folder and kind, the second model the one with the largest agree-vs-random gain on calibration.

Costs: cost_usd where the data has it (routerbench), else tokens x list price per 1M tokens
(classifiers.training.data.PRICES_PER_1M; the second models here: DeepSeek-Coder-V2 at
DeepSeek-V2's price, $0.14 in / $0.28 out, as DeepSeek's API served it; gemini-1.5-flash-002
$0.075 / $0.30, Google's list price for prompts up to 128k tokens). RouterBench stores each
answer as the repr of a one-string list ("['C\\n']"); every check here sees it unwrapped, as a
provider would return it.
Second models (routerbench): every other model with answers whose mean cost is at most twice
the cheap model's.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import classifiers  # noqa: E402
from classifiers.extract import agree, prompt_kind  # noqa: E402
from classifiers.rules import rule_failure  # noqa: E402
from classifiers.training.data import RoutingData, load_dataset, load_responses  # noqa: E402
from cascade.replay.arrow import unwrap_response as unwrap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = ROOT.parent / "shared" / "data"
DATASETS = ("mmlu_pro", "routerbench_subset")
#: USD per 1M (input, output) tokens of second models the data gives no cost for
SECOND_PRICES: dict[str, tuple[float, float]] = {
    "DeepSeek-Coder-V2_5shots": (0.14, 0.28),
    "gemini-1.5-flash-002_5shots": (0.075, 0.30),
}
UNJUDGED = -1  # agreement value where an extraction failed
MIN_ROWS = 20  # kinds with fewer prompts in the evaluated split are not reported
REASONED_WORDS = 20  # checker*: judges multiple-choice answers of at least this many words only


def default_checker_threshold() -> float:
    """The answer checker's threshold in the shipped default policy."""
    from policies.loader import load_policy

    for check in load_policy("default").escalation.checks:
        if check.name == "answer_checker":
            return float(check.param("threshold", 0.5))
    raise SystemExit("the default policy has no answer_checker check")


@dataclass(frozen=True)
class Rows:
    """One folder's prompts where the pair and every second model have an answer and a score."""

    name: str
    cheap: str
    strong: str
    kinds: np.ndarray
    splits: np.ndarray
    q: dict[str, np.ndarray]        # model -> score per prompt
    cost: dict[str, np.ndarray]     # model -> USD per prompt
    checker: np.ndarray             # P(cheap answer inadequate)
    checker_judges: np.ndarray      # a multiple-choice answer with reasoning (the checker's training kind)
    rules_pass: np.ndarray          # the cheap answer fails no rule (empty, refusal, no choice)
    scorer_read: np.ndarray         # the benchmark's scorer found a final answer in the cheap one
    agreement: dict[str, np.ndarray]  # second model -> 1 / 0 / UNJUDGED per prompt

    def __len__(self) -> int:
        return len(self.kinds)

    def take(self, mask: np.ndarray) -> "Rows":
        """The rows where ``mask`` holds."""
        def pick(value):
            if isinstance(value, np.ndarray):
                return value[mask]
            if isinstance(value, dict):
                return {k: v[mask] for k, v in value.items()}
            return value
        return Rows(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})


def model_cost(data: RoutingData, model: str) -> np.ndarray:
    try:
        return data.cost_of(model)
    except KeyError:
        price_in, price_out = SECOND_PRICES[model]
        completion = data.completion_tokens[:, data.col(model)]
        return (data.prompt_tokens * price_in + completion * price_out) / 1e6


def second_models(folder: Path, data: RoutingData) -> list[str]:
    """Models with answers other than the pair; in folders with real costs, the ones at most twice
    the cheap model's mean cost."""
    import pyarrow.parquet as pq

    answered = set(pq.read_table(folder / "responses.parquet", columns=["model"]).column("model").to_pylist())
    models = sorted(answered - {data.cheap, data.strong})
    if np.isnan(data.cost_usd[:, data.col(data.cheap)]).all():
        return [m for m in models if m in SECOND_PRICES]
    limit = 2 * np.nanmean(data.cost_of(data.cheap))
    return [m for m in models if np.nanmean(model_cost(data, m)) <= limit]


def load_rows(folder: Path) -> Rows:
    """Every split of one folder: the answers unwrapped, agreement, rules and checker judged on them."""
    data = load_dataset(folder).with_pair()
    seconds = second_models(folder, data)
    answers = {m: load_responses(folder, data, m) for m in (data.cheap, *seconds)}
    keep = np.array([all(answers[m][i] is not None for m in answers) for i in range(len(data))])
    for model in seconds:
        keep &= ~np.isnan(data.score_of(model)) & ~np.isnan(model_cost(data, model))
    data = data.subset(keep)
    answers = {m: [a for a, k in zip(texts, keep) if k] for m, texts in answers.items()}
    cheap_text = [unwrap(a) or "" for a in answers[data.cheap]]
    agreement = {}
    for model in seconds:
        verdicts = (agree(a, unwrap(b) or "", "auto", p)
                    for a, b, p in zip(cheap_text, answers[model], data.prompts))
        agreement[model] = np.array([UNJUDGED if v is None else int(v) for v in verdicts])
    checker = classifiers.load_answer_checker("default").score(data.prompts, cheap_text)
    rules_pass = np.array([rule_failure(p, a) is None for p, a in zip(data.prompts, cheap_text)])
    kinds = np.array([prompt_kind(p) for p in data.prompts])
    judges = (kinds == "choice") & np.array([len(a.split()) >= REASONED_WORDS for a in cheap_text])
    models = (data.cheap, data.strong, *seconds)
    return Rows(folder.name, data.cheap, data.strong, kinds, data.split_names(),
                {m: data.score_of(m) for m in models}, {m: model_cost(data, m) for m in models},
                np.asarray(checker), judges, rules_pass, scorer_read(folder, data), agreement)


def scorer_read(folder: Path, data: RoutingData) -> np.ndarray:
    """Whether the benchmark's own scorer extracted a final answer from the cheap model's text
    (answers.parquet, where the folder has it; else True everywhere)."""
    import pyarrow.parquet as pq

    if not (folder / "answers.parquet").is_file():
        return np.ones(len(data), bool)
    table = pq.read_table(folder / "answers.parquet").to_pydict()
    read = {p for p, m, a in zip(table["prompt_id"], table["model"], table["answer"]) if m == data.cheap and a}
    return np.array([p in read for p in data.prompt_ids])


@dataclass(frozen=True)
class Outcome:
    quality: float       # % of always-strong's quality
    cost: float          # % of always-strong's cost
    to_strong: float     # % of prompts sent to the strong model
    random_share: float  # random routing's quality (%) at the same strong share
    random_cost: float   # random routing's quality (%) at the same cost


def outcome(rows: Rows, accept: np.ndarray, second: str | None, second_called: np.ndarray | float) -> Outcome:
    """Quality and cost of accepting the cheap answer where ``accept``, else escalating."""
    qc, qs = rows.q[rows.cheap], rows.q[rows.strong]
    cc, cs = rows.cost[rows.cheap], rows.cost[rows.strong]
    paid = cc + (~accept) * cs + (0.0 if second is None else second_called * rows.cost[second])
    share = float(np.mean(~accept))
    mix = np.clip((paid.sum() - cc.sum()) / (cs.sum() - cc.sum()), 0.0, 1.0)
    q_c, q_s = qc.mean(), qs.mean()
    return Outcome(100 * np.where(accept, qc, qs).mean() / q_s, 100 * paid.sum() / cs.sum(), 100 * share,
                   100 * (q_c + share * (q_s - q_c)) / q_s, 100 * (q_c + mix * (q_s - q_c)) / q_s)


def policies(rows: Rows, second: str, threshold: float) -> dict[str, Outcome]:
    """The cascades of the module docstring, for one second model."""
    passed = rows.checker < threshold
    passed_star = passed | ~rows.checker_judges
    ag, rules = rows.agreement[second], rows.rules_pass
    same, unjudged = ag == 1, ag == UNJUDGED
    out = {
        "checker": outcome(rows, passed, None, 0.0),
        "checker*": outcome(rows, passed_star, None, 0.0),
        "agree": outcome(rows, same, second, 1.0),
        "agree, ?->checker": outcome(rows, same | (unjudged & passed), second, 1.0),
        "rules, agree": outcome(rows, same & rules, second, rules),
        "agree AND checker": outcome(rows, same & passed, second, passed),
        "rules, agree, ?->chk*": outcome(rows, rules & (same | (unjudged & passed_star)), second,
                                         rules & (rows.kinds != "code")),
        "rules, agree, checker*": outcome(rows, rules & same & passed_star, second, rules & passed_star),
        "agree OR checker": outcome(rows, same | passed, second, ~passed),
    }
    qs, cs = rows.q[rows.strong], rows.cost[rows.strong]
    out["second alone"] = Outcome(100 * rows.q[second].mean() / qs.mean(), 100 * rows.cost[second].sum() / cs.sum(),
                                  0.0, np.nan, np.nan)
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    _, inverse, counts = np.unique(np.r_[pos, neg], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # average rank of each tie group
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def best_threshold(rows: Rows) -> float | None:
    """The checker threshold with the largest quality gain over random at the same strong share
    (None when no threshold beats random)."""
    grid = np.unique(np.quantile(rows.checker, np.linspace(0, 1, 41)))
    best, gain = None, 0.0
    for t in grid:
        o = outcome(rows, rows.checker < t, None, 0.0)
        if o.quality - o.random_share > gain:
            best, gain = float(t), o.quality - o.random_share
    return best


def fmt(o: Outcome) -> str:
    rand = "" if np.isnan(o.random_share) else f"{o.random_share:7.1f}% {o.random_cost:7.1f}%"
    return f"{o.quality:7.1f}% {o.cost:6.1f}% {o.to_strong:6.1f}%  {rand}"


HEAD = f"{'quality':>8s} {'cost':>7s} {'strong':>7s}  {'rnd@shr':>8s} {'rnd@cost':>8s}"


def kinds_in(rows: Rows) -> list[str]:
    """The answer kinds with at least MIN_ROWS prompts."""
    kinds, counts = np.unique(rows.kinds, return_counts=True)
    return [str(k) for k, n in zip(kinds, counts) if n >= MIN_ROWS]


def policy_table(rows: Rows, threshold: float) -> None:
    print(f"{'kind':7s} {'second model':30s} {'n':>5s} {'judged':>7s}  {'policy':22s} {HEAD}")
    for kind in kinds_in(rows):
        part = rows.take(rows.kinds == kind)
        for second in part.agreement:
            judged = 100 * np.mean(part.agreement[second] != UNJUDGED)
            for i, (name, o) in enumerate(policies(part, second, threshold).items()):
                lead = f"{kind:7s} {second[:30]:30s} {len(part):5d} {judged:6.1f}%" if i == 0 else " " * 52
                print(f"{lead}  {name:22s} {fmt(o)}")
    if not rows.scorer_read.all():
        for second, ag in rows.agreement.items():
            accepted = (ag == 1) & rows.rules_pass
            print(f"   rules, agree with {second}: {np.sum(accepted & ~rows.scorer_read)} of the {accepted.sum()} "
                  "cheap answers accepted score 0 as the benchmark's scorer found no final answer in them")


def unjudged_table(rows: Rows, evaluated: str, threshold: float) -> None:
    """Where agreement cannot judge: the cheap and strong answers' quality there and the fallbacks
    (the checker at the default threshold, and at the one chosen on these calibration rows)."""
    print(f"{'kind':7s} {'second model':30s} {'n ?':>5s} {'share':>6s} {'cheap q':>8s} {'strong q':>8s}  "
          f"{'fallback':14s} {HEAD}")
    for kind in kinds_in(rows.take(rows.splits == evaluated)):
        for second in rows.agreement:
            where = (rows.kinds == kind) & (rows.agreement[second] == UNJUDGED)
            sub = rows.take(where & (rows.splits == evaluated))
            cal = rows.take(where & (rows.splits == "calibration"))
            if len(sub) == 0:
                continue
            n_kind = np.sum((rows.kinds == kind) & (rows.splits == evaluated))
            lead = (f"{kind:7s} {second[:30]:30s} {len(sub):5d} {100 * len(sub) / n_kind:5.1f}% "
                    f"{sub.q[sub.cheap].mean():8.3f} {sub.q[sub.strong].mean():8.3f}")
            chosen = best_threshold(cal) if len(cal) else None
            fallbacks = [("escalate", np.zeros(len(sub), bool)), (f"checker {threshold:g}", sub.checker < threshold),
                         ("checker " + ("abstains" if chosen is None else f"{chosen:.3f}"),
                          np.ones(len(sub), bool) if chosen is None else sub.checker < chosen),
                         ("accept", np.ones(len(sub), bool))]
            for i, (name, accept) in enumerate(fallbacks):
                print(f"{lead if i == 0 else ' ' * len(lead)}  {name:14s} {fmt(outcome(sub, accept, second, 1.0))}")


def checker_table(rows: Rows, evaluated: str, threshold: float) -> None:
    print(f"{'kind':7s} {'n':>5s} {'cheap q':>8s} {'score p5/p50/p95':>17s} {'AUROC':>6s} {'flags right':>11s} "
          f"{'flags wrong':>11s}  {'threshold':14s} {HEAD}")
    for kind in kinds_in(rows.take(rows.splits == evaluated)):
        part = rows.take((rows.kinds == kind) & (rows.splits == evaluated))
        cal = rows.take((rows.kinds == kind) & (rows.splits == "calibration"))
        wrong = part.q[part.cheap] < 0.5
        flagged = part.checker >= threshold
        p5, p50, p95 = np.percentile(part.checker, [5, 50, 95])
        lead = (f"{kind:7s} {len(part):5d} {part.q[part.cheap].mean():8.3f} {p5:5.2f}/{p50:5.2f}/{p95:5.2f} "
                f"{auroc(part.checker, wrong):6.3f} "
                f"{100 * flagged[~wrong].mean():10.1f}% {100 * flagged[wrong].mean():10.1f}%")
        chosen = best_threshold(cal) if len(cal) else None
        print(f"{lead}  {'default ' + format(threshold, 'g'):14s} {fmt(outcome(part, ~flagged, None, 0.0))}")
        label = "abstains (cal.)" if chosen is None else f"cal. {chosen:.3f}"
        accept = np.ones(len(part), bool) if chosen is None else part.checker < chosen
        print(f"{' ' * len(lead)}  {label:14s} {fmt(outcome(part, accept, None, 0.0))}")


#: policy -> its column in the summary
SUMMARY = {"checker": "checker", "agree": "agree", "rules, agree": "rules+agree",
           "rules, agree, ?->chk*": "rules+agree ?chk*", "rules, agree, checker*": "rules+agree+chk*"}


def pick_second(rows: Rows, threshold: float) -> str:
    """The second model whose agreement policy gains most over random at the same cost (calibration)."""
    cal = rows.take(rows.splits == "calibration")
    if len(cal) == 0:
        return next(iter(rows.agreement))
    gains = {m: (o := policies(cal, m, threshold)["agree"]).quality - o.random_cost for m in rows.agreement}
    return max(gains, key=gains.__getitem__)


def summary_rows(rows: Rows, evaluated: str, threshold: float) -> list[str]:
    """One line per answer kind: the SUMMARY policies with the second model picked on calibration."""
    out = []
    for kind in kinds_in(rows.take(rows.splits == evaluated)):
        sel = rows.kinds == kind
        second = pick_second(rows.take(sel), threshold)
        part = rows.take(sel & (rows.splits == evaluated))
        got = policies(part, second, threshold)
        cells = " ".join(f"{got[p].quality:5.1f}/{got[p].cost:5.1f}" + (
            f" {got[p].quality - got[p].random_cost:+5.1f}" if got[p].cost <= 100 else " dear!") for p in SUMMARY)
        out.append(f"{rows.name[:18]:18s} {kind:6s} {second[:20]:20s} {len(part):5d} {cells}")
    return out


def print_summary(lines: Sequence[str]) -> None:
    print("\n== summary: quality % / cost % of always-strong's, and quality minus random routing's at the "
          "same cost\n   (points; dear!: dearer than always-strong); second model: the one whose agreement gains "
          "most over\n   random on calibration")
    columns = " ".join(f"{n:>17s}" for n in SUMMARY.values())
    print(f"{'folder':18s} {'kind':6s} {'second model':20s} {'n':>5s} {columns}")
    for line in lines:
        print(line)


def folder_report(folder: Path, evaluated: str, threshold: float) -> list[str]:
    rows = load_rows(folder)
    part = rows.take(rows.splits == evaluated)
    qc, qs = part.q[part.cheap], part.q[part.strong]
    print(f"\n== {folder.name}: {rows.cheap} -> {rows.strong}; {evaluated} n={len(part)} (cheap {qc.mean():.3f}, "
          f"strong {qs.mean():.3f}; always-cheap = "
          f"{100 * part.cost[part.cheap].sum() / part.cost[part.strong].sum():.1f}% of always-strong's cost); "
          f"checker threshold {threshold:g}")
    policy_table(part, threshold)
    print(f"\n-- {folder.name}: where agreement cannot judge (an extraction failed)")
    unjudged_table(rows, evaluated, threshold)
    print(f"\n-- {folder.name}: the answer checker per kind (threshold chosen on calibration)")
    checker_table(rows, evaluated, threshold)
    return summary_rows(rows, evaluated, threshold)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="*", default=[str(DATA_ROOT / d) for d in DATASETS])
    parser.add_argument("--split", default="test", choices=("calibration", "test"))
    args = parser.parse_args(argv)
    threshold = default_checker_threshold()
    lines: list[str] = []
    for folder in map(Path, args.data):
        if not (folder / "responses.parquet").is_file():
            raise SystemExit(f"{folder}: no responses.parquet (answers are needed for a second opinion)")
        lines += folder_report(folder, args.split, threshold)
    print_summary(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
