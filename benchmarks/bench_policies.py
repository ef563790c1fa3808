"""The built-in policies replayed on every outcome folder, beside random routing at the same cost.

    python benchmarks/bench_policies.py [--split test] [--split calibration] [--policy default ...]
        [--held-out DIR ...]

For every folder of ../shared/data (or $CASCADE_DATA), its natural cheap -> strong pair stands in for
DeepSeek-V2 -> GPT-4o; ``quality-match``'s second opinion is a third cheap model of the same folder
(mmlu_pro: DeepSeek-Coder-V2, as in production; routerbench: Yi-34B) where the folder has answer texts.
Each row: quality kept and cost as % of always-strong, the share sent to the strong model, random
routing's quality at the same strong share (the bar: never below it, never dearer than always-strong)
and, stricter, at the same cost.
``--held-out DIR``: an outcome folder nothing shipped was fitted on (``cascade data download routellm_gsm8k``,
``routellm_mt_bench``), replayed whole (split ``all``) with its natural pair.
The numbers come from ``cascade replay`` itself (the same engine and checks as production).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import DATA  # noqa: E402

FOLDERS = {  # folder: (maps for the ladder, second-opinion model or None)
    "mmlu_pro": ({}, "DeepSeek-Coder-V2_5shots"),
    "routellm_mmlu": ({}, None),
    "routerbench_subset": ({}, "zero-one-ai/Yi-34B-Chat"),
    "llmrouter": ({"deepseek-v2": "llama-3.1-8b-instruct", "gpt-4o": "llama-3.1-nemotron-51b-instruct"}, None),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", action="append", help="test (default) and/or calibration")
    parser.add_argument("--policy", action="append", help="built-in policies (default: default, quality-match)")
    parser.add_argument("--held-out", action="append", type=Path, default=[],
                        help="an outcome folder replayed whole (split all), e.g. routellm_gsm8k")
    args = parser.parse_args()
    from cascade.replay.run import replay_report
    splits, policies = args.split or ["test"], args.policy or ["default", "quality-match"]
    print(f"{'folder':<20} {'split':<12} {'policy':<14} {'quality':>8} {'cost':>7} {'strong':>7} {'random@share':>13} "
          f"{'random@cost':>12}  verdict (same share, not dearer)")
    runs = [(folder, DATA / folder, maps, second, splits) for folder, (maps, second) in FOLDERS.items()]
    runs += [(path.name, path, {}, None, ["all"]) for path in args.held_out]
    for folder, path, maps, second, folder_splits in runs:
        if not (path / "prompts.parquet").is_file():
            print(f"{folder:<20} (not found at {path})")
            continue
        for split in folder_splits:
            for policy in policies:
                extra = {"deepseek-coder": second} if policy == "quality-match" else {}
                if policy == "quality-match" and second is None:
                    print(f"{folder:<20} {split:<12} {policy:<14} (no second-opinion answers in this folder)")
                    continue
                doc = replay_report(policy, [path], maps={**maps, **extra}, split=split)
                s, row, rnd = doc["summary"], doc["rows"]["policy"], doc["rows"]["random"]
                at_share = rnd["quality_retained"]
                ok = s["quality_retained"] >= at_share - 1e-9 and s["savings_vs_strong"] >= -1e-9
                print(f"{folder:<20} {split:<12} {policy:<14} {s['quality_retained']:>8.1%} {1 - s['savings_vs_strong']:>7.1%} "
                      f"{row['strong_share']:>7.1%} {at_share:>13.1%} {s['random_quality_retained_at_same_cost']:>12.1%}  "
                      f"{'ok' if ok else 'BELOW RANDOM OR DEARER'}")


if __name__ == "__main__":
    main()
