"""The learning loop end to end on traffic the shipped artifacts never trained on.

``--traffic``: ``mmlu-math`` (MMLU-Pro's math questions, the real pair DeepSeek-V2 -> GPT-4o) or
``routerbench`` (ARC-Challenge, MBPP, Winogrande; mixtral-8x7b-chat in DeepSeek-V2's seat and
gpt-4-1106-preview in GPT-4o's); only the calibration + test splits (the shipped artifacts saw only the
train split), served live by the local fake provider answering each prompt with that model's recorded
answer (responses.parquet) and token counts. The prompts are shuffled (seeded) and halved:

1. live half: ``Router.acomplete`` with ``extends: default`` + ``shadow: {rate: 0.3, models: [gpt-4o]}``
   (traces with text), optionally with simulated user feedback (``--feedback-rate``: that share of
   requests gets the recorded score of the answer returned as its feedback);
2. ``cascade train --traces T --out DIR --policy P`` (the CLI, in a subprocess);
3. ``cascade replay --data HELD --sweep --json`` of the shipped policy P and of DIR/policy.yaml on the
   held-out half (an outcome folder of those prompts: every model's recorded score and cost).

Prints before / after: the policy's APGR (the replay report's ``policy`` row: the curve its classifier
threshold traces with its checks at their threshold), the classifier's alone, quality, quality retained,
$ per 1k requests, and the cost of the trained policy's cheapest sweep point reaching the shipped policy's
quality (chosen on the held-out half: shown, not counted). The bar: APGR at least 0.05 above the
shipped default's, or the candidate's operating point at its quality for <= 85% of its cost.

    python benchmarks/bench_learning.py [--traffic mmlu-math routerbench] [--seed 0 1 2] [--rate 0.3]
                                        [--feedback-rate 0] [--mix-train-split] [--keep DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import data_dir  # noqa: E402
from cascade.replay.arrow import unwrap_response  # noqa: E402



@dataclass(frozen=True)
class Traffic:
    """A folder of recorded outcomes and answer texts, the pair in (DeepSeek-V2's, GPT-4o's) seats, and
    which of its tasks (task name prefix; empty: all) are served."""
    folder: str
    cheap: str
    strong: str
    task_prefix: str = ""

    @property
    def seats(self) -> dict[str, str]:          # provider model name -> recorded model
        return {"deepseek-chat": self.cheap, "gpt-4o": self.strong}

    @property
    def maps(self) -> list[str]:
        return ["--map", f"deepseek-v2={self.cheap}", "--map", f"gpt-4o={self.strong}"]


TRAFFIC = {
    # RouterBench ARC-Challenge, MBPP, Winogrande: mixtral-8x7b-chat in DeepSeek-V2's seat, gpt-4-1106 in GPT-4o's
    "routerbench": Traffic("routerbench_subset", "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
    # MMLU-Pro math (the only math in the shared data with answer texts): the real pair
    "mmlu-math": Traffic("mmlu_pro", "DeepSeek-V2-Chat(api,2024-05)", "gpt-4o-2024-05-13", "mmlu-pro/math"),
}


def load_traffic(traffic: Traffic, seed: int) -> tuple[list[dict], dict, dict]:
    """Calibration + test prompts (the shipped artifacts trained on the train split) of the traffic's
    tasks with both models' recorded answers, shuffled; answers and scores by (id, model)."""
    import pyarrow.parquet as pq
    from classifiers.splits import split_of
    folder = data_dir(traffic.folder)
    prompts = [p for p in pq.read_table(folder / "prompts.parquet").to_pylist()
               if p["task"].startswith(traffic.task_prefix)]
    outcomes = {(o["prompt_id"], o["model"]): o for o in pq.read_table(folder / "outcomes.parquet").to_pylist()
                if o["score"] is not None}
    answers = {(r["prompt_id"], r["model"]): unwrap_response(r["response"])
               for r in pq.read_table(folder / "responses.parquet").to_pylist() if r["response"]}
    usable = [p for p in prompts if split_of(p["prompt"]) != "train"
              and all((p["prompt_id"], m) in outcomes and (p["prompt_id"], m) in answers
                      for m in traffic.seats.values())]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order], answers, outcomes


def script_provider(server, traffic: Traffic, by_text: dict, answers: dict) -> None:
    from tests.harness.fake_provider import answer
    for name, recorded in traffic.seats.items():
        def reply(messages, recorded=recorded):
            pid = by_text[messages[-1]["content"]]
            return answers[(pid, recorded)]
        server.script(name, answer(reply))


async def serve_live(traffic: Traffic, live: list[dict], policy: Path, traces: Path, url: str, outcomes: dict,
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
            score = outcomes[(p["prompt_id"], traffic.cheap if trace.model == "deepseek-v2" else traffic.strong)]["score"]
            router.feedback(trace.request_id, float(score), user="bench")
            seen["feedback"] += 1
    await asyncio.gather(*(one(p) for p in live))
    await router.aclose()
    return seen


def held_out_folder(traffic: Traffic, held: list[dict], dst: Path) -> Path:
    """An outcome folder of the held-out prompts (every model's outcomes and answers kept)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    src = data_dir(traffic.folder)
    ids = [p["prompt_id"] for p in held]
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "outcomes", "responses", "answers"):
        if not (src / f"{name}.parquet").is_file():
            continue
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


def replay(traffic: Traffic, policy: Path, folder: Path) -> dict:
    return json.loads(cascade("replay", "--policy", str(policy), "--data", str(folder), *traffic.maps, "--split", "all",
                              "--sweep", "--json", "--quiet"))


def cost_at_quality(report: dict, quality: float) -> float | None:
    """$ per 1k of the cheapest sweep point whose quality reaches ``quality``."""
    points = report["sweep"]["points"]
    costs = [c for q, c in zip(points["quality"], points["usd_per_1k"])
             if q is not None and c is not None and q >= quality - 1e-12]
    return min(costs) if costs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traffic", nargs="+", choices=sorted(TRAFFIC), default=["mmlu-math"],
                    help="traffic to serve (each run separately)")
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="seeds (shuffle, shadow sample): one run each")
    ap.add_argument("--rate", type=float, default=0.3, help="shadow.rate of the live policy")
    ap.add_argument("--feedback-rate", type=float, default=0.0, help="share of live requests given user feedback")
    ap.add_argument("--target", default="quality=0.95", help="cascade train --target")
    ap.add_argument("--mix-train-split", action="store_true",
                    help="also give cascade train --data FOLDER (the traffic's folder; its train-split rows only: "
                         "none of them is live or held-out traffic)")
    ap.add_argument("--keep", type=Path, help="write the run's files here instead of a temporary folder")
    args = ap.parse_args()
    results = [run_once(args, name, seed) for name in args.traffic for seed in args.seed]
    if len(results) > 1:
        summary(results)


def run_once(args: argparse.Namespace, name: str, seed: int) -> dict:
    from tests.harness.fake_provider import FakeProvider
    traffic = TRAFFIC[name]
    prompts, answers, outcomes = load_traffic(traffic, seed)
    live, held = prompts[: len(prompts) // 2], prompts[len(prompts) // 2:]
    by_text = {p["prompt"]: p["prompt_id"] for p in prompts}
    with tempfile.TemporaryDirectory(prefix="bench-learning-") as tmp:
        work = (args.keep / f"{name}-{seed}") if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        policy = work / "live.yaml"
        policy.write_text(f"extends: default\nname: live\nshadow: {{rate: {args.rate}, models: [gpt-4o], "
                          f"seed: {seed}}}\n")
        traces = work / "traces.jsonl"
        traces.unlink(missing_ok=True)
        with FakeProvider() as server:
            script_provider(server, traffic, by_text, answers)
            seen = asyncio.run(serve_live(traffic, live, policy, traces, server.url, outcomes, args.feedback_rate,
                                          seed))
        shadows = [json.loads(x) for x in traces.read_text().splitlines() if '"kind": "shadow"' in x]
        labelled = [s for s in shadows if (s.get("label") or {}).get("adequate") is not None]
        mix = ["--data", str(data_dir(traffic.folder))] if args.mix_train_split else []
        trained = json.loads(cascade("train", "--traces", str(traces), "--out", str(work / "candidate"),
                                     "--policy", str(policy), "--target", args.target, "--json", *mix))
        folder = held_out_folder(traffic, held, work / "held-out")
        before = replay(traffic, policy, folder)
        after = replay(traffic, work / "candidate" / "policy.yaml", folder)
    return report(args, name, seed, live, held, seen, shadows, labelled, trained, before, after)


def report(args, name, seed, live, held, seen, shadows, labelled, trained, before, after) -> dict:
    b, a = before["rows"]["policy"], after["rows"]["policy"]
    print(f"traffic: {name} ({TRAFFIC[name].folder} {TRAFFIC[name].task_prefix or 'all tasks'}) calibration+test, "
          f"{len(live)} live / {len(held)} held out (seed {seed})")
    print(f"live: {seen['cheap']} answered by deepseek-v2's seat, {seen['strong']} by gpt-4o's; "
          f"{len(shadows)} shadowed (rate {args.rate}), {len(labelled)} labelled by agreement; "
          f"{seen['feedback']} user feedback lines")
    print(f"cascade train: {trained['labelled_requests']} labelled requests + {trained['outcome_rows']} outcome rows, "
          f"fitted on {trained['fitted_on']} "
          f"({trained['inadequate_cheap_answers']} inadequate cheap answers), thresholds calibrated on "
          f"{trained['calibrated_on']} for {trained['target']}: {trained['thresholds']}")
    print(f"{'held-out replay':<28}{'APGR':>8}{'quality':>10}{'retained':>10}{'$/1k':>10}{'strong %':>10}")
    for label, row in (("shipped default (+shadow)", b), ("trained candidate", a)):
        print(f"{label:<28}{row['apgr']:>8.3f}{row['quality']:>10.4f}{row['quality_retained']:>10.3f}"
              f"{row['usd_per_1k']:>10.4f}{100 * row['strong_share']:>9.1f}%")
    print(f"always-cheap / always-strong quality: {before['rows']['always_cheap']['quality']:.4f} / "
          f"{before['rows']['always_strong']['quality']:.4f}; classifier-alone APGR "
          f"{before['rows']['classifier']['apgr']:.3f} -> {after['rows']['classifier']['apgr']:.3f}")
    same = cost_at_quality(after, b["quality"])
    ratio = f"{same / b['usd_per_1k']:.3f}x" if same is not None and b["usd_per_1k"] else "n/a"
    print(f"cost at the shipped policy's quality ({b['quality']:.4f}): shipped ${b['usd_per_1k']:.4f}/1k, "
          f"best point of the trained policy's sweep (chosen on held-out: optimistic) "
          f"${same if same is None else round(same, 4)}/1k ({ratio})")
    gain = a["apgr"] - b["apgr"]
    cheaper = a["quality"] >= b["quality"] - 1e-12 and a["usd_per_1k"] <= 0.85 * b["usd_per_1k"]
    met = gain >= 0.05 or cheaper
    print(f"APGR {b['apgr']:.3f} -> {a['apgr']:.3f} ({gain:+.3f}); bar (APGR +0.05, or the candidate's own "
          f"operating point at >= its quality and <= 85% of its cost): {'met' if met else 'NOT met'}\n")
    return {"traffic": name, "seed": seed, "apgr": (b["apgr"], a["apgr"]), "quality": (b["quality"], a["quality"]),
            "usd_per_1k": (b["usd_per_1k"], a["usd_per_1k"]), "labelled": len(labelled), "met": met}


def summary(results: list[dict]) -> None:
    print(f"{'traffic':<14}{'seed':>5}{'labels':>8}{'APGR shipped':>14}{'trained':>9}{'gain':>8}"
          f"{'quality':>17}{'$/1k':>17}  bar")
    for r in results:
        (ab, aa), (qb, qa), (cb, ca) = r["apgr"], r["quality"], r["usd_per_1k"]
        print(f"{r['traffic']:<14}{r['seed']:>5}{r['labelled']:>8}{ab:>14.3f}{aa:>9.3f}{aa - ab:>+8.3f}"
              f"{qb:>8.4f}->{qa:.4f}{cb:>8.4f}->{ca:.4f}  {'met' if r['met'] else 'NOT met'}")
    for name in dict.fromkeys(r["traffic"] for r in results):
        gains = [r["apgr"][1] - r["apgr"][0] for r in results if r["traffic"] == name]
        print(f"{name}: mean APGR gain {np.mean(gains):+.3f} over {len(gains)} seeds")


if __name__ == "__main__":
    main()
