"""The loop end to end against the local provider: live traffic with shadow sampling, ``cascade train
--traces`` (classifier and checker adapted to the traffic, thresholds calibrated on it), ``cascade
promote`` (switch only when held-out replay shows the candidate no worse and cheaper; rollback)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from cascade.router import Router
from classifiers import load_classifier
from policies.loader import load_policy
from tests.cascade.router.conftest import FixedScore, provider_env
from tests.harness.fake_provider import answer

commands.register(app)
runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})
LIVE = "extends: default\nname: live\nshadow: {rate: 1.0, models: [gpt-4o]}\n"


def prompt(i: int) -> str:
    """Half the traffic asks for a sum the cheap model gets right, half for a product it gets wrong."""
    a, b = 11 + i, 7 + (i * 3) % 13
    return f"Calculate the sum of {a} and {b}." if i % 2 else f"Calculate the product of {a} times {b} exactly."


def right(text: str) -> int:
    nums = [int(w.strip(".")) for w in text.split() if w.strip(".").isdigit()]
    return nums[0] + nums[1] if "sum" in text else nums[0] * nums[1]


def cheap_answer(messages) -> str:
    text = messages[-1]["content"]
    return f"The answer is {right(text) + (0 if 'sum' in text else 1)}."


def strong_answer(messages) -> str:
    return f"The answer is {right(messages[-1]['content'])}."


async def live_traffic(fake_provider, policy: Path, traces: Path, ids: range) -> None:
    fake_provider.script("deepseek-chat", answer(cheap_answer))
    fake_provider.script("gpt-4o", answer(strong_answer))
    router = Router(str(policy), budget_store="memory://", classifier=FixedScore(0.1), trace_path=traces,
                    trace_text=True, env=provider_env(fake_provider.url), seed=0)
    for i in ids:
        await router.acomplete([{"role": "user", "content": prompt(i)}], user="u")
    await router.aclose()


@pytest.fixture
def trained(tmp_path, fake_provider):
    async def make() -> tuple[Path, Path, Path]:
        policy = tmp_path / "live.yaml"
        policy.write_text(LIVE)
        await live_traffic(fake_provider, policy, tmp_path / "train.jsonl", range(150))   # 30+ labels of each kind
        await live_traffic(fake_provider, policy, tmp_path / "held.jsonl", range(150, 190))
        result = runner.invoke(app, ["train", "--traces", str(tmp_path / "train.jsonl"), "--out",
                                     str(tmp_path / "cand"), "--policy", str(policy), "--json"])
        assert result.exit_code == 0, result.output
        make.report = json.loads(result.output)
        return policy, tmp_path / "cand", tmp_path / "held.jsonl"
    return make


async def test_train_adapts_the_classifier_and_calibrates_the_policy(trained):
    policy, cand, _ = await trained()
    report = trained.report
    written = load_policy(str(cand / "policy.yaml"))
    if report["classifier_fit"]["beats_base"]:
        assert written.routing.classifier == report["classifier"] == str(cand / "classifier.json")
    else:                                              # the base already ranks this traffic: it is kept
        assert written.routing.classifier == "by-kind" and report["classifier"] is None
        assert not (cand / "classifier.json").exists()
    assert report["checker_fit"]["beats_base"] and report["checker_fit"]["judges_kinds"] == ["number"]
    checker = next(c for c in written.escalation.checks if c.name == "answer_checker")
    assert checker.param("artifact") == str(cand / "checker.json")
    from classifiers import load_answer_checker
    trained_checker = load_answer_checker(str(cand / "checker.json"))
    assert trained_checker.judges(prompt(3), "The answer is 27.")               # a number: it had labels
    assert not trained_checker.judges("Which is a prime?\nA. 4\nB. 7\nC. 9\nD. 12", "B")   # choices: none
    scorer = load_classifier(written.routing.classifier)
    hard = scorer.score([prompt(i) for i in range(200, 220, 2)])
    easy = scorer.score([prompt(i) for i in range(201, 221, 2)])
    assert hard.min() > easy.max()                     # it learned which prompts the cheap model gets wrong
    assert "extends: " + str(policy) in (cand / "policy.yaml").read_text()


async def test_train_does_not_depend_on_the_order_of_the_trace_lines(trained, tmp_path):
    policy, cand, _ = await trained()
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    shuffled = tmp_path / "shuffled.jsonl"
    random.Random(1).shuffle(lines)                    # concurrent requests finish in any order
    shuffled.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["train", "--traces", str(shuffled), "--out", str(tmp_path / "cand2"), "--policy",
                                 str(policy), "--json"])
    assert result.exit_code == 0, result.output
    again = json.loads(result.output)
    for key in ("labelled_requests", "fitted_on", "calibrated_on", "inadequate_cheap_answers"):
        assert again[key] == trained.report[key]
    assert (tmp_path / "cand2" / "policy.yaml").read_text().replace("cand2", "cand") == (cand / "policy.yaml").read_text()
    for name in ("checker.json", "classifier.json"):
        if (cand / name).exists():
            assert (tmp_path / "cand2" / name).read_bytes() == (cand / name).read_bytes()


async def test_promote_switches_only_a_cheaper_no_worse_candidate_and_rolls_back(trained, tmp_path):
    policy, cand, held = await trained()
    always_strong = tmp_path / "strong.yaml"
    always_strong.write_text(LIVE + "routing: {classifier: heuristic, thresholds: [0.0]}\n")
    before = always_strong.read_text()
    done = runner.invoke(app, ["promote", "--candidate", str(cand), "--policy", str(always_strong), "--traces",
                               str(held), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["promoted"] and report["cheaper"] and report["no_worse"]
    lo, hi = report["usd_per_1k_diff"]["ci95"]
    assert lo <= report["usd_per_1k_diff"]["mean"] <= hi < 0
    live = load_policy(str(always_strong))
    version = Path(report["version"])
    kept = str(version / "classifier.json") if (version / "classifier.json").is_file() else "by-kind"
    assert live.routing.classifier == kept and (version / "previous.yaml").read_text() == before
    again = runner.invoke(app, ["promote", "--candidate", str(cand), "--policy", str(always_strong), "--traces",
                                str(held), "--json"])
    assert again.exit_code == 1 and not json.loads(again.stdout.split("error:")[0])["promoted"]   # not cheaper now
    back = runner.invoke(app, ["promote", "--policy", str(always_strong), "--rollback"])
    assert back.exit_code == 0 and always_strong.read_text() == before
    assert runner.invoke(app, ["promote", "--policy", str(always_strong), "--rollback"]).exit_code == 1


async def test_train_needs_labels(tmp_path, fake_provider):
    policy = tmp_path / "unshadowed.yaml"
    policy.write_text("extends: default\nname: plain\n")
    await live_traffic(fake_provider, policy, tmp_path / "t.jsonl", range(4))
    result = runner.invoke(app, ["train", "--traces", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "c"),
                                 "--policy", str(policy)])
    assert result.exit_code == 2 and "no labelled request" in result.output


async def test_too_few_labels_to_fit_still_calibrate_the_thresholds(tmp_path, fake_provider):
    policy = tmp_path / "live.yaml"
    policy.write_text(LIVE)
    await live_traffic(fake_provider, policy, tmp_path / "t.jsonl", range(12))      # 12 labels: nothing to fit
    result = runner.invoke(app, ["train", "--traces", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "c"),
                                 "--policy", str(policy), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["classifier"] is None and report["checker"] is None
    assert "too few labelled requests" in report["classifier_fit"]["skipped"]
    assert report["calibrated_on"] == 12 and load_policy(report["policy_file"]).routing.classifier == "by-kind"
