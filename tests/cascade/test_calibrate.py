"""cascade calibrate: targets met on the calibration split, thresholds written with comments kept."""
from __future__ import annotations

import numpy as np
import pytest

from cascade.calibrate import calibrate, parse_target
from cascade.replay.checks import swept_checker
from cascade.replay.run import load_data, run_replay
from cascade.replay.sweep import GRID, with_thresholds
from policies.errors import ConfigError
from policies.loader import builtin_policy_path, load_policy
from tests.cascade.replay.helpers import AnswerTable, TableScorer, write_folder, write_policy

CHECKER = "checks: [non_empty, {name: answer_checker, artifact: fake, threshold: 0.5}]"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cal")
    rng = np.random.default_rng(11)
    n = 500
    gain = rng.random(n)
    qc = (rng.random(n) < 0.55).astype(float)
    qs = np.maximum(qc, (rng.random(n) < gain).astype(float))
    prompts = [(f"p{i}", f"calibration prompt {i}", int(rng.integers(50, 2000))) for i in range(n)]
    rows = [(f"p{i}", m, q[i], int(rng.integers(10, 800)), None) for m, q in (("C", qc), ("S", qs)) for i in range(n)]
    answers = [(f"p{i}", "C", f"cheap {i}" if qc[i] else f"doubtful {i}") for i in range(n)]
    answers += [(f"p{i}", "S", f"strong {i}") for i in range(n)]
    path = write_folder(tmp / "d", prompts, rows, answers)
    scores = TableScorer({t: float(np.clip(g + rng.normal(0, 0.25), 0, 1)) for (_, t, _), g in zip(prompts, gain)})
    checker = AnswerTable({f"doubtful {i}": float(rng.uniform(0.3, 1)) for i in range(n)}
                          | {f"cheap {i}": float(rng.uniform(0, 0.7)) for i in range(n)})
    return path, scores, checker


def cal_points(policy, path, scores):
    """(t1, quality, usd_per_1k, strong_share) of the engine replay at every grid t1 (calibration split)."""
    data = load_data(policy, [path], split="calibration")
    out = []
    for t1 in GRID:
        e = run_replay(with_thresholds(policy, float(t1), None), data=data, classifier=scores).engine
        out.append((float(t1), e.quality_units.sum() / 1e9 / len(data), e.cost_nano.sum() / 1e9 / len(data) * 1000,
                    e.calls[:, -1].mean()))
    return out, data.quality[:, -1].mean()


def test_quality_target_is_the_cheapest_point_reaching_it(tmp_path, folder):
    path, scores, _ = folder
    policy_file = write_policy(tmp_path)
    doc = calibrate(str(policy_file), [path], "quality=0.9", classifier=scores)
    points, q_strong = cal_points(load_policy(str(policy_file)), path, scores)
    feasible = [p for p in points if p[1] >= 0.9 * q_strong - 1e-12]
    cal = doc["calibration"]
    assert cal["quality_retained"] >= 0.9 - 1e-9
    assert cal["usd_per_1k"] == pytest.approx(min(p[2] for p in feasible))
    assert load_policy(str(policy_file)).routing.thresholds == (doc["chosen"]["t1"],)
    assert doc["test"]["n"] == doc["n"]["test"] > 0 and doc["previous"]["t1"] == 0.5


@pytest.mark.parametrize("target, field, limit", [("strong-share=0.3", 3, 0.3), ("usd-per-1k=8", 2, 8.0)])
def test_cost_targets_give_the_best_quality_within_the_limit(tmp_path, folder, target, field, limit):
    path, scores, _ = folder
    policy_file = write_policy(tmp_path)
    doc = calibrate(str(policy_file), [path], target, classifier=scores)
    points, _ = cal_points(load_policy(str(policy_file)), path, scores)
    key = "strong_share" if field == 3 else "usd_per_1k"
    assert doc["calibration"][key] <= limit + 1e-12
    assert doc["calibration"]["quality"] == pytest.approx(max(p[1] for p in points if p[field] <= limit + 1e-12))


def test_comments_and_layout_are_kept(tmp_path, folder):
    path, scores, _ = folder
    policy_file = write_policy(tmp_path)
    before = policy_file.read_text().splitlines()
    doc = calibrate(str(policy_file), [path], "quality=0.9", classifier=scores)
    after = policy_file.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after)
    assert changed == [("  thresholds: [0.5]", f"  thresholds: [{doc['chosen']['t1']}]")]


def test_answer_checker_threshold_is_chosen_jointly_and_written_in_place(tmp_path, folder):
    path, scores, checker = folder
    policy_file = write_policy(tmp_path, **{"checks: [non_empty]": CHECKER})
    doc = calibrate(str(policy_file), [path], "quality=0.95", classifier=scores, answer_checkers={"fake": checker})
    assert doc["chosen"]["t2"] is not None and len(doc["grid"]["t2"]) == 101
    text = policy_file.read_text()
    assert f"checks: [non_empty, {{name: answer_checker, artifact: fake, threshold: {doc['chosen']['t2']}}}]" in text
    assert "# the threshold calibrate rewrites" in text and "# kept comment" in text
    written = load_policy(str(policy_file))
    assert swept_checker(written).param("threshold") == doc["chosen"]["t2"]
    assert doc["calibration"]["quality_retained"] >= 0.95 - 1e-9


def test_extends_without_the_keys_gets_them_added(tmp_path, folder):
    path, scores, checker = folder
    base = write_policy(tmp_path, **{"checks: [non_empty]": CHECKER})
    base_text = base.read_text()
    child = tmp_path / "child.yaml"
    child.write_text("# my child policy\nextends: tiny.yaml\nname: child\n", encoding="utf-8")
    doc = calibrate(str(child), [path], "strong-share=0.4", classifier=scores, answer_checkers={"fake": checker})
    written = load_policy(str(child))
    assert written.routing.thresholds == (doc["chosen"]["t1"],)
    assert swept_checker(written).param("threshold") == doc["chosen"]["t2"]
    assert child.read_text().startswith("# my child policy\nextends: tiny.yaml\nname: child\n")
    assert base.read_text() == base_text


def test_built_in_policies_are_refused_unless_copied(tmp_path, folder):
    path, scores, _ = folder
    builtin = builtin_policy_path("default").read_text()
    with pytest.raises(ConfigError, match="--out"):
        calibrate("default", [path], "quality=0.9", classifier=scores)
    with pytest.raises(ConfigError, match="--out"):
        calibrate(str(builtin_policy_path("default")), [path], "quality=0.9", classifier=scores)
    copy = tmp_path / "sub" / "mine.yaml"
    doc = calibrate("default", [path], "quality=0.9", out=copy, classifier=scores)
    assert builtin_policy_path("default").read_text() == builtin
    changed = [(a, b) for a, b in zip(builtin.splitlines(), copy.read_text().splitlines()) if a != b]
    t1 = load_policy("default").routing.thresholds[0]
    assert changed[0] == (f"  thresholds: [{t1}]", f"  thresholds: [{doc['chosen']['t1']}]")    # layout kept
    assert all("threshold" in a and "threshold" in b for a, b in changed) and len(changed) <= 2
    assert len(copy.read_text().splitlines()) == len(builtin.splitlines())
    assert load_policy(str(copy)).routing.thresholds == (doc["chosen"]["t1"],)


def test_out_elsewhere_keeps_a_relative_extends_pointing_at_its_base(tmp_path, folder):
    path, scores, _ = folder
    write_policy(tmp_path)
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny.yaml\nname: child\n", encoding="utf-8")
    out = tmp_path / "elsewhere" / "child.yaml"
    calibrate(str(child), [path], "quality=0.9", out=out, classifier=scores)
    assert load_policy(str(out)).name == "child"
    assert "extends: ../tiny.yaml" in out.read_text()


@pytest.mark.parametrize("bad", ["quality", "quality=abc", "speed=1", "quality=-1", "quality=0", "strong-share=2",
                                 "usd-per-1k=nan", ""])
def test_malformed_targets(bad):
    with pytest.raises(ConfigError, match="--target"):
        parse_target(bad)


def test_unreachable_target(tmp_path, folder):
    path, scores, _ = folder
    policy_file = write_policy(tmp_path)
    with pytest.raises(ConfigError, match="not reachable"):
        calibrate(str(policy_file), [path], "quality=1.5", classifier=scores)
    assert "thresholds: [0.5]" in policy_file.read_text()
