"""Our choice extractor against MMLU-Pro's own scorer, on every model's answer texts.

    .venv/bin/python benchmarks/bench_extract.py [--data ../shared/data/mmlu_pro]
    .venv/bin/python benchmarks/bench_extract.py --gsm8k /work/ext/gsm8k --cruxeval /work/ext \
        --kinds /work/ext/mt-bench --kinds ../shared/data/llmrouter

The public-traffic parts (GSM8K answers against the gold number, CRUXEval output predictions, prompt
kinds of any folder) are ``benchmarks/extract_public.py``; ``--no-mmlu-pro`` skips the part below.

For each model with answer texts (responses.parquet: DeepSeek-V2, GPT-4o, DeepSeek-Coder-V2,
Gemini-1.5-Flash) the letter :func:`classifiers.extract.extract_choice` reads (given the prompt) is
compared with the letter the benchmark's scorer extracted from the same text (answers.parquet):

  same       both read the same letter, or both read none
  we only    we read a letter where the scorer read none (the benchmark scored the answer 0)
  they only  the scorer read a letter where we read none
  differ     both read a letter, not the same one

and, for "we only", how many of our letters are the right option (the letter most often scored 1
among all 31 models' extracted answers to that prompt) -- i.e. how often the statement we read is
right although the benchmark counts it wrong. DeepSeek-V2's and GPT-4o's letters come from the
scorer of the benchmark's first release (only "answer is (X)"); the two 5-shot models' from its
later one, which falls back on the last lone capital letter of the text (a stray "I" or "A").
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifiers.extract import extract_choice  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "data" / "mmlu_pro"
CLASSES = ("same", "we only", "they only", "differ")


def classify(ours: str | None, theirs: str | None) -> str:
    if ours == theirs:
        return "same"
    if theirs is None:
        return "we only"
    return "they only" if ours is None else "differ"


def right_letters(folder: Path) -> dict[str, str]:
    """prompt_id -> the letter most often scored 1 among every model's extracted answers."""
    import pyarrow.parquet as pq

    answers = pq.read_table(folder / "answers.parquet").to_pydict()
    scores = pq.read_table(folder / "outcomes.parquet", columns=["prompt_id", "model", "score"]).to_pydict()
    scored = {(p, m): s for p, m, s in zip(scores["prompt_id"], scores["model"], scores["score"])}
    votes: dict[str, Counter] = defaultdict(Counter)
    for p, m, a in zip(answers["prompt_id"], answers["model"], answers["answer"]):
        if a is not None and scored.get((p, m)) == 1:
            votes[p][a] += 1
    return {p: c.most_common(1)[0][0] for p, c in votes.items()}


def measure(folder: Path) -> dict[str, Counter]:
    import pyarrow.parquet as pq

    prompts = pq.read_table(folder / "prompts.parquet", columns=["prompt_id", "prompt"]).to_pydict()
    prompt_of = dict(zip(prompts["prompt_id"], prompts["prompt"]))
    answers = pq.read_table(folder / "answers.parquet").to_pydict()
    scorer = {(p, m): a for p, m, a in zip(answers["prompt_id"], answers["model"], answers["answer"])}
    right = right_letters(folder)
    texts = pq.read_table(folder / "responses.parquet").to_pydict()
    counts: dict[str, Counter] = defaultdict(Counter)
    for pid, model, text in zip(texts["prompt_id"], texts["model"], texts["response"]):
        if (pid, model) not in scorer:
            continue
        ours = extract_choice(text or "", prompt_of[pid])
        cls = classify(ours, scorer[(pid, model)])
        counts[model][cls] += 1
        if cls == "we only" and pid in right:
            counts[model]["we only, known"] += 1
            counts[model]["we only, right"] += ours == right[pid]
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT)
    parser.add_argument("--gsm8k", type=Path, help="a GSM8K outcome folder (cascade data download routellm_gsm8k)")
    parser.add_argument("--cruxeval", type=Path, help="a folder with cruxeval.jsonl, crux_prompts.py and "
                        "crux_scored_codellama_output.json")
    parser.add_argument("--kinds", type=Path, action="append", default=[], help="an outcome folder whose prompt "
                        "kinds to count (repeatable)")
    parser.add_argument("--no-mmlu-pro", action="store_true", help="skip the MMLU-Pro letters")
    args = parser.parse_args(argv)
    if not args.no_mmlu_pro:
        print_mmlu_pro(args.data)
    from benchmarks.extract_public import print_cruxeval, print_gsm8k, print_kinds
    if args.gsm8k:
        print_gsm8k(args.gsm8k)
    if args.cruxeval:
        print_cruxeval(args.cruxeval)
    for folder in args.kinds:
        print_kinds(folder)


def print_mmlu_pro(folder: Path) -> None:
    counts = measure(folder)
    print(f"{'model':32s} {'texts':>6s} {'agree':>7s} " + " ".join(f"{c:>9s}" for c in CLASSES[1:])
          + "  we-only letters right")
    for model, c in sorted(counts.items()):
        total = sum(c[k] for k in CLASSES)
        known = c["we only, known"]
        right = f"{c['we only, right']}/{known}" if known else "-"
        print(f"{model:32s} {total:6d} {c['same'] / total:7.2%} "
              + " ".join(f"{c[k]:9d}" for k in CLASSES[1:]) + f"  {right}")


if __name__ == "__main__":
    main()
