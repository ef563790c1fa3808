"""The learning loop end to end on traffic the shipped artifacts never trained on.

RouterBench's calibration + test splits (ARC-Challenge, MBPP, Winogrande; the shipped classifier saw only
its train split), cheap model mixtral-8x7b-chat in DeepSeek-V2's seat and gpt-4-1106-preview in GPT-4o's,
served live by the local fake provider answering each prompt with that model's recorded answer
(responses.parquet) and token counts. The prompts are shuffled (seeded) and halved:

1. live half: ``Router.acomplete`` with ``extends: default`` + ``shadow: {rate: 0.3, models: [gpt-4o]}``
   (traces with text), optionally with simulated user feedback (``--feedback-rate``: that share of
   requests gets the recorded score of the answer returned as its feedback);
2. ``cascade train --traces T --out DIR --policy P`` (the CLI, in a subprocess);
3. ``cascade replay --data HELD --sweep --json`` of the shipped policy P and of DIR/policy.yaml on the
   held-out half (an outcome folder of those prompts: every model's recorded score and cost).

Prints before / after: APGR (the classifier's, RouteLLM's definition), quality, quality retained, $ per
1k requests, and the cost of the trained policy's cheapest sweep point reaching the shipped policy's
quality. The issue's bar: APGR at least 0.05 above the shipped default's, or its quality at <= 85% of its cost.

    python benchmarks/bench_learning.py [--seed 0] [--rate 0.3] [--feedback-rate 0] [--mix-train-split] [--keep DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import data_dir  # noqa: E402

CHEAP, STRONG = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"
SEATS = {"deepseek-chat": CHEAP, "gpt-4o": STRONG}          # provider model name -> recorded model
MAPS = ["--map", f"deepseek-v2={CHEAP}", "--map", f"gpt-4o={STRONG}"]


def load_traffic(seed: int) -> tuple[list[dict], dict, dict]:
    """Held-out prompts with both models' recorded answers, shuffled; answers and scores by (id, model)."""
    import pyarrow.parquet as pq
    from classifiers.splits import split_of
    folder = data_dir("routerbench_subset")
    prompts = pq.read_table(folder / "prompts.parquet").to_pylist()
    outcomes = {(o["prompt_id"], o["model"]): o for o in pq.read_table(folder / "outcomes.parquet").to_pylist()
                if o["score"] is not None}
    answers = {(r["prompt_id"], r["model"]): answer_text(r["response"])
               for r in pq.read_table(folder / "responses.parquet").to_pylist() if r["response"]}
    usable = [p for p in prompts if split_of(p["prompt"]) != "train"
              and all((p["prompt_id"], m) in outcomes and (p["prompt_id"], m) in answers for m in SEATS.values())]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order], answers, outcomes


def answer_text(response: str) -> str:
    """RouterBench stores each answer as the repr of a list of strings (``"['A\\n']"``): its text."""
    import ast
    if response.startswith("[") and response.endswith("]"):
        try:
            parts = ast.literal_eval(response)
        except (ValueError, SyntaxError):
            return response
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return "".join(parts)
    return response


def script_provider(server, by_text: dict, answers: dict, outcomes: dict) -> None:
    from tests.harness.fake_provider import answer
    for name, recorded in SEATS.items():
        def reply(messages, recorded=recorded):
            pid = by_text[messages[-1]["content"]]
            return answers[(pid, recorded)]
        server.script(name, answer(reply))


async def serve_live(live: list[dict], policy: Path, traces: Path, url: str, outcomes: dict,
                     feedback_rate: float, seed: int) -> dict:
    from cascade.router import Router
    env = {"DEEPSEEK_API_KEY": "sk-bench", "OPENAI_API_KEY": "sk-bench", "DEEPSEEK_API_BASE": url,
           "OPENAI_API_BASE": url}
    router = Router(str(policy), budget_store="memory://", trace_path=traces, trace_text=True, env=env, seed=seed)
    rng = np.random.default_rng(seed + 1)
    sem = asyncio.Semaphore(16)
    seen = {"cheap": 0, "strong": 0, "feedback": 0}

    async def one(p: dict) -> None:
        async with sem:
            resp = await router.acomplete([{"role": "user", "content": p["prompt"]}], user="bench")
        trace = resp.cascade
        seen["cheap" if trace.model == "deepseek-v2" else "strong"] += 1
        if rng.random() < feedback_rate:
            score = outcomes[(p["prompt_id"], CHEAP if trace.model == "deepseek-v2" else STRONG)]["score"]
            router.feedback(trace.request_id, float(score), user="bench")
            seen["feedback"] += 1
    await asyncio.gather(*(one(p) for p in live))
    await router.aclose()
    return seen


def held_out_folder(held: list[dict], dst: Path) -> Path:
    """An outcome folder of the held-out prompts (every model's outcomes and answers kept)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    src = data_dir("routerbench_subset")
    ids = [p["prompt_id"] for p in held]
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "outcomes", "responses"):
        table = pq.read_table(src / f"{name}.parquet")
        pq.write_table(table.filter(pc.is_in(table["prompt_id"], value_set=__import__("pyarrow").array(ids))),
                       dst / f"{name}.parquet")
    (dst / "meta.json").write_text((src / "meta.json").read_text())
    return dst


def cascade(*args: str) -> str:
    cmd = [sys.executable, "-m", "cascade.cli", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def replay(policy: Path, folder: Path) -> dict:
    return json.loads(cascade("replay", "--policy", str(policy), "--data", str(folder), *MAPS, "--split", "all",
                              "--sweep", "--json", "--quiet"))


def cost_at_quality(report: dict, quality: float) -> float | None:
    """$ per 1k of the cheapest sweep point whose quality reaches ``quality``."""
    points = report["sweep"]["points"]
    costs = [c for q, c in zip(points["quality"], points["usd_per_1k"])
             if q is not None and c is not None and q >= quality - 1e-12]
    return min(costs) if costs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.3, help="shadow.rate of the live policy")
    ap.add_argument("--feedback-rate", type=float, default=0.0, help="share of live requests given user feedback")
    ap.add_argument("--target", default="quality=0.95", help="cascade train --target")
    ap.add_argument("--mix-train-split", action="store_true",
                    help="also give cascade train --data routerbench_subset (its train-split rows only: none of "
                         "them is live or held-out traffic)")
    ap.add_argument("--keep", type=Path, help="write the run's files here instead of a temporary folder")
    args = ap.parse_args()
    from tests.harness.fake_provider import FakeProvider
    traffic, answers, outcomes = load_traffic(args.seed)
    live, held = traffic[: len(traffic) // 2], traffic[len(traffic) // 2:]
    by_text = {p["prompt"]: p["prompt_id"] for p in traffic}
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        policy = work / "live.yaml"
        policy.write_text(f"extends: default\nname: live\nshadow: {{rate: {args.rate}, models: [gpt-4o], "
                          f"seed: {args.seed}}}\n")
        traces = work / "traces.jsonl"
        traces.unlink(missing_ok=True)
        with FakeProvider() as server:
            script_provider(server, by_text, answers, outcomes)
            seen = asyncio.run(serve_live(live, policy, traces, server.url, outcomes, args.feedback_rate, args.seed))
        shadows = [json.loads(x) for x in traces.read_text().splitlines() if '"kind": "shadow"' in x]
        labelled = [s for s in shadows if (s.get("label") or {}).get("adequate") is not None]
        mix = ["--data", str(data_dir("routerbench_subset"))] if args.mix_train_split else []
        trained = json.loads(cascade("train", "--traces", str(traces), "--out", str(work / "candidate"),
                                     "--policy", str(policy), "--target", args.target, "--json", *mix))
        folder = held_out_folder(held, work / "held-out")
        before, after = replay(policy, folder), replay(work / "candidate" / "policy.yaml", folder)
    report(args, live, held, seen, shadows, labelled, trained, before, after)


def report(args, live, held, seen, shadows, labelled, trained, before, after) -> None:
    b, a = before["rows"]["policy"], after["rows"]["policy"]
    print(f"traffic: routerbench_subset calibration+test, {len(live)} live / {len(held)} held out (seed {args.seed})")
    print(f"live: {seen['cheap']} answered by deepseek-v2's seat, {seen['strong']} by gpt-4o's; "
          f"{len(shadows)} shadowed (rate {args.rate}), {len(labelled)} labelled by agreement; "
          f"{seen['feedback']} user feedback lines")
    print(f"cascade train: {trained['labelled_requests']} labelled requests + {trained['outcome_rows']} outcome rows, "
          f"fitted on {trained['fitted_on']} "
          f"({trained['inadequate_cheap_answers']} inadequate cheap answers), thresholds calibrated on "
          f"{trained['calibrated_on']} for {trained['target']}: {trained['thresholds']}")
    print(f"{'held-out replay':<28}{'APGR':>8}{'quality':>10}{'retained':>10}{'$/1k':>10}{'strong %':>10}")
    for name, row in (("shipped default (+shadow)", b), ("trained candidate", a)):
        print(f"{name:<28}{row['apgr']:>8.3f}{row['quality']:>10.4f}{row['quality_retained']:>10.3f}"
              f"{row['usd_per_1k']:>10.4f}{100 * row['strong_share']:>9.1f}%")
    print(f"always-cheap / always-strong quality: {before['rows']['always_cheap']['quality']:.4f} / "
          f"{before['rows']['always_strong']['quality']:.4f}")
    same = cost_at_quality(after, b["quality"])
    ratio = f"{same / b['usd_per_1k']:.3f}x" if same is not None and b["usd_per_1k"] else "n/a"
    print(f"cost at the shipped policy's quality ({b['quality']:.4f}): shipped ${b['usd_per_1k']:.4f}/1k, "
          f"trained classifier's sweep ${same if same is None else round(same, 4)}/1k ({ratio})")
    gain = a["apgr"] - b["apgr"]
    met = gain >= 0.05 or (same is not None and b["usd_per_1k"] and same <= 0.85 * b["usd_per_1k"])
    print(f"APGR {b['apgr']:.3f} -> {a['apgr']:.3f} ({gain:+.3f}); bar (APGR +0.05, or its quality at <= 85% "
          f"of its cost): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
