"""cascade calibrate's joint choice: classifier threshold x checker threshold x agreement check (off /
sequential / parallel), on synthetic tables whose right answer is known and on the bundled sample."""
from __future__ import annotations

import numpy as np
import pytest

from cascade.calibrate import calibrate
from cascade.calibrate_joint import agreement_mode, variants, with_mode
from policies.loader import load_policy
from tests.cascade.replay.helpers import TableScorer, write_folder, write_policy

# the second opinion ("mid", mapped to dataset model X) at the cheap model's price
SECOND = {"price: {input_per_1m: 4.0, output_per_1m: 8.0}": "price: {input_per_1m: 1.0, output_per_1m: 2.0}"}
AGREE = "checks: [non_empty, {name: agreement, with: mid, extract: choice}]"


def synthetic(tmp, n: int, second_says) -> tuple:
    """Cheap model right on ~55% (answers "(A)"), else "(B)"; strong always right; X answers second_says(i, right)."""
    rng = np.random.default_rng(5)
    right = rng.random(n) < 0.55
    prompts = [(f"p{i}", f"joint prompt {i}", 1000) for i in range(n)]
    rows = [(f"p{i}", m, q, 500, None) for m, qs in (("C", right.astype(float)), ("S", np.ones(n)), ("X", np.ones(n)))
            for i, q in enumerate(qs)]
    answers = [(f"p{i}", "C", "The answer is (A)" if right[i] else "The answer is (B)") for i in range(n)]
    answers += [(f"p{i}", "S", "The answer is (A)") for i in range(n)]
    answers += [(f"p{i}", "X", second_says(i, right[i])) for i in range(n)]
    path = write_folder(tmp / "d", prompts, rows, answers, meta={"cheap": "C", "strong": "S", "aliases": {"mid": "X"}})
    scores = TableScorer({t: float(rng.uniform(0, 0.5)) for _, t, _ in prompts})     # says nothing
    return path, scores


def test_variants_of_a_policy_with_an_agreement_check(tmp_path):
    policy = load_policy(str(write_policy(tmp_path, **{"checks: [non_empty]": AGREE})))
    assert [v.mode for v in variants(policy)] == ["off", "sequential", "parallel"]
    assert [agreement_mode(v.policy) for v in variants(policy)] == ["off", "sequential", "parallel"]
    assert [s.name for s in with_mode(policy, "off").escalation.checks] == ["non_empty"]
    plain = load_policy(str(write_policy(tmp_path, name="plain.yaml")))
    assert [v.mode for v in variants(plain)] == [None]


def test_an_informative_second_opinion_is_chosen_and_the_classifier_left_out(tmp_path):
    # X names the right letter: agreement holds exactly when the cheap answer is right. Full quality then
    # costs cheap + second opinion + strong on the wrong ones; without it, every prompt must go to strong.
    path, scores = synthetic(tmp_path, 600, lambda i, right: "The answer is (A)")
    policy_file = write_policy(tmp_path, **{"checks: [non_empty]": AGREE, **SECOND})
    doc = calibrate(str(policy_file), [path], "quality=1.0", classifier=scores)
    assert doc["chosen"]["agreement"] == "sequential" and doc["chosen"]["t1"] == 1.0
    assert doc["calibration"]["quality_retained"] == pytest.approx(1.0)
    assert doc["calibration"]["strong_share"] < 0.6
    modes = {r["agreement"]: r for r in doc["runner_ups"]}
    assert set(modes) == {"off", "parallel"}
    assert modes["off"]["strong_share"] == pytest.approx(1.0)
    assert modes["off"]["usd_per_1k"] > doc["chosen_point"]["usd_per_1k"] <= modes["parallel"]["usd_per_1k"]
    assert agreement_mode(load_policy(str(policy_file))) == "sequential"


def test_a_second_opinion_that_always_disagrees_is_switched_off(tmp_path):
    # X never agrees: the check escalates everything it sees, so the classifier alone is cheaper.
    path, scores = synthetic(tmp_path, 600, lambda i, right: "The answer is (C)")
    policy_file = write_policy(tmp_path, **{"checks: [non_empty]": AGREE, **SECOND})
    doc = calibrate(str(policy_file), [path], "quality=0.9", classifier=scores)
    plain = write_policy(tmp_path, name="plain.yaml", **SECOND)
    alone = calibrate(str(plain), [path], "quality=0.9", classifier=scores)
    assert doc["chosen"]["agreement"] == "off"
    assert doc["chosen"]["t1"] == alone["chosen"]["t1"]
    assert doc["calibration"]["usd_per_1k"] == pytest.approx(alone["calibration"]["usd_per_1k"])
    written = load_policy(str(policy_file))
    assert agreement_mode(written) == "off" and [s.name for s in written.escalation.checks] == ["non_empty"]
    assert "agreement" not in policy_file.read_text().split("escalation:")[1]


def test_an_inherited_agreement_check_is_written_into_the_child(tmp_path):
    path, scores = synthetic(tmp_path, 400, lambda i, right: "The answer is (C)")
    base = write_policy(tmp_path, **{"checks: [non_empty]": AGREE, **SECOND})
    base_text = base.read_text()
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny.yaml\nname: child\n", encoding="utf-8")
    doc = calibrate(str(child), [path], "quality=0.9", classifier=scores)
    assert doc["chosen"]["agreement"] == "off" and base.read_text() == base_text
    assert agreement_mode(load_policy(str(child))) == "off"


def test_bundled_sample_quality_match(tmp_path):
    """On the bundled MMLU-Pro sample: the chosen point reaches the target and is the cheapest of all variants'."""
    out = tmp_path / "qm.yaml"
    doc = calibrate("quality-match", [], "quality=0.95", out=out)
    chosen = doc["chosen_point"]
    assert chosen["quality_retained"] >= 0.95 - 1e-9
    assert {r["agreement"] for r in doc["runner_ups"]} | {chosen["agreement"]} == {"off", "sequential", "parallel"}
    assert all(chosen["usd_per_1k"] <= r["usd_per_1k"] + 1e-12 for r in doc["runner_ups"])
    written = load_policy(str(out))
    assert agreement_mode(written) == chosen["agreement"]
    assert written.routing.thresholds[0] == chosen["t1"]
    assert doc["calibration"]["quality_retained"] == pytest.approx(chosen["quality_retained"])
