"""Cold start: a fresh process imports the router, builds it and gets its first answer.

Contenders, each in its own fresh Python process, against the same local OpenAI-compatible server
(``FakeProviderProcess``, answering at once):

* ``cascade direct``: ``import cascade`` + ``Router("default", transport="direct")`` + ``complete()``;
  litellm is never imported (the process reports whether it was);
* ``cascade litellm``: the same over the litellm transport (it imports litellm before the first call);
* ``litellm.Router``: ``import litellm`` + ``litellm.Router(model_list=[...])`` + ``completion()``.

Prints the median of ``--runs`` cold starts of each, seconds, and the ratios. Run: python benchmarks/bench_first_request.py
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # tests.harness (the fake provider) lives beside the packages

CASCADE = """
import json, sys, time
t0 = time.perf_counter()
import cascade
from cascade import Router
router = Router("default", budget_store="memory://", transport=TRANSPORT, env=ENV)
resp = router.complete(messages=[{"role": "user", "content": "What is 2+2?"}])
elapsed = time.perf_counter() - t0
assert resp.choices[0].message.content
print(json.dumps({"s": elapsed, "litellm_imported": "litellm" in sys.modules}))
router.close()
"""

PEER = """
import json, os, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
t0 = time.perf_counter()
import litellm
router = litellm.Router(model_list=[{"model_name": "deepseek-v2", "litellm_params": {
    "model": "deepseek/deepseek-chat", "api_base": ENV["DEEPSEEK_API_BASE"], "api_key": "sk-bench"}}])
resp = router.completion(model="deepseek-v2", messages=[{"role": "user", "content": "What is 2+2?"}])
elapsed = time.perf_counter() - t0
assert resp.choices[0].message.content
print(json.dumps({"s": elapsed, "litellm_imported": True}))
"""


def cold_start(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"contender failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.harness.fake_provider import FakeProviderProcess
    with FakeProviderProcess() as server:
        env = {v: server.url for v in ("DEEPSEEK_API_BASE", "OPENAI_API_BASE")}
        env.update(DEEPSEEK_API_KEY="sk-bench", OPENAI_API_KEY="sk-bench")
        prefix = f"ENV = {env!r}\n"
        contenders = {"cascade direct": prefix + "TRANSPORT = 'direct'\n" + CASCADE,
                      "cascade litellm": prefix + "TRANSPORT = 'litellm'\n" + CASCADE,
                      "litellm.Router": prefix + PEER}
        results = {name: [cold_start(textwrap.dedent(code)) for _ in range(args.runs)]
                   for name, code in contenders.items()}
    print(f"cold start to the first answer, median of {args.runs} fresh processes (local server, no latency)")
    base = statistics.median(r["s"] for r in results["litellm.Router"])
    for name, runs in results.items():
        median = statistics.median(r["s"] for r in runs)
        imported = "yes" if any(r["litellm_imported"] for r in runs) else "no"
        print(f"  {name:<16} {median:6.2f} s   litellm imported: {imported:<3}  {base / median:5.1f}x faster than litellm.Router"
              if name != "litellm.Router" else f"  {name:<16} {median:6.2f} s   litellm imported: {imported}")


if __name__ == "__main__":
    main()
