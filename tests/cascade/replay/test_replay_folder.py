"""Replay over hand-built outcome folders: figures computed by hand."""
from __future__ import annotations

import pytest

from cascade.replay.run import replay_report, run_replay
from policies.errors import ConfigError
from tests.cascade.replay.helpers import AnswerTable, TableScorer, write_folder, write_policy

PROMPTS = [("p1", "q1", 1000), ("p2", "q2", 1000), ("p3", "q3", 1000), ("p4", "q4", 1000)]
SCORES = TableScorer({"q1": 0.1, "q2": 0.2, "q3": 0.7, "q4": 0.9})
CHEAP_Q = {"p1": 1.0, "p2": 0.0, "p3": 1.0, "p4": 0.0}
STRONG_Q = {"p1": 1.0, "p2": 1.0, "p3": 0.0, "p4": 1.0}
CHEAP_USD, STRONG_USD = 0.002, 0.02          # 1000 prompt + 500 completion tokens at the catalog prices


def outcomes(cheap_cost=None):
    return [(p, "C", CHEAP_Q[p], 500, cheap_cost) for p in CHEAP_Q] + [(p, "S", STRONG_Q[p], 500, None) for p in STRONG_Q]


def responses(cheap=None, strong=None):
    cheap = cheap or {}
    strong = strong or {}
    return ([(p, "C", cheap.get(p, f"cheap answer to {p}")) for p in CHEAP_Q]
            + [(p, "S", strong.get(p, f"strong answer to {p}")) for p in STRONG_Q])


def report(tmp_path, policy_text_replace=None, folder_kw=None, **kw):
    policy = write_policy(tmp_path, **(policy_text_replace or {}))
    folder = write_folder(tmp_path / "data", PROMPTS, **(folder_kw or {"outcomes": outcomes(), "responses": responses()}))
    return replay_report(str(policy), [folder], split="all", classifier=SCORES, **kw)


def test_routing_by_threshold_hand_computed(tmp_path):
    doc = report(tmp_path)
    op = doc["rows"]["policy"]
    # q1, q2 (< 0.5) -> cheap: 1 + 0; q3, q4 -> strong: 0 + 1
    assert op["quality"] == pytest.approx(0.5)
    assert op["total_usd"] == pytest.approx(2 * CHEAP_USD + 2 * STRONG_USD)
    assert op["usd_per_1k"] == pytest.approx((2 * CHEAP_USD + 2 * STRONG_USD) / 4 * 1000)
    assert op["strong_share"] == 0.5 and op["escalation_rate"] == 0.0
    assert doc["traffic"]["answered"] == {"cheap": 0.5, "strong": 0.5, "none": 0.0}
    assert doc["rows"]["always_cheap"]["quality"] == pytest.approx(0.5)
    assert doc["rows"]["always_cheap"]["total_usd"] == pytest.approx(4 * CHEAP_USD)
    assert doc["rows"]["always_strong"]["quality"] == pytest.approx(0.75)
    assert op["quality_retained"] == pytest.approx(0.5 / 0.75)
    assert op["savings_vs_strong"] == pytest.approx(1 - (2 * CHEAP_USD + 2 * STRONG_USD) / (4 * STRONG_USD))
    assert doc["rows"]["oracle"]["quality"] == pytest.approx(1.0)     # p2, p4 strong; p1, p3 cheap
    assert doc["rows"]["oracle"]["total_usd"] == pytest.approx(2 * CHEAP_USD + 2 * STRONG_USD)
    assert doc["data"]["prices"] == {"cheap": "policy catalog price x tokens", "strong": "policy catalog price x tokens"}
    assert doc["data"]["models"] == [{"cheap": "C", "strong": "S"}]
    assert doc["engine_equals_vectorised"] is True


def test_dataset_cost_usd_is_used_when_present(tmp_path):
    doc = report(tmp_path, folder_kw={"outcomes": outcomes(cheap_cost=0.5), "responses": responses()})
    assert doc["rows"]["policy"]["total_usd"] == pytest.approx(2 * 0.5 + 2 * STRONG_USD)
    assert doc["data"]["prices"]["cheap"] == "dataset cost_usd"


def test_failed_check_on_the_recorded_text_escalates(tmp_path):
    doc = report(tmp_path, folder_kw={"outcomes": outcomes(), "responses": responses(cheap={"p2": "   "})})
    op = doc["rows"]["policy"]
    # p2's cheap answer is blank: non_empty fails, the strong model answers (score 1), both are paid
    assert op["quality"] == pytest.approx(0.75)
    assert op["total_usd"] == pytest.approx(2 * CHEAP_USD + 3 * STRONG_USD)
    assert op["escalation_rate"] == 0.25 and op["strong_share"] == 0.75
    assert doc["traffic"]["calls"] == {"cheap": 0.5, "strong": 0.75}
    assert doc["checks"]["evaluated"]["non_empty"] == 5


def test_answer_format_check_reads_the_response(tmp_path):
    fmt = 'checks: [{name: answer_format, pattern: "answer is \\\\(?[A-J]"}]'
    doc = report(tmp_path, {"checks: [non_empty]": fmt},
                 folder_kw={"outcomes": outcomes(), "responses": responses(
                     cheap={"p1": "so the answer is (B)", "p2": "no idea"},
                     strong={p: "the answer is C" for p in CHEAP_Q})})
    assert doc["rows"]["policy"]["escalation_rate"] == 0.25          # p2 only
    assert doc["rows"]["policy"]["quality"] == pytest.approx(0.75)


@pytest.mark.parametrize("mode, quality, outcome_share", [("best_answer", 0.75, "best_answer_rate"),
                                                          ("raise", 0.0, "failure_rate")])
def test_exhausted_ladder(tmp_path, mode, quality, outcome_share):
    refusal = {p: "I'm sorry, I can't help with that." for p in CHEAP_Q}
    doc = report(tmp_path, {"on_exhausted: best_answer": f"on_exhausted: {mode}", "checks: [non_empty]":
                            "checks: [non_empty, no_refusal]"},
                 folder_kw={"outcomes": outcomes(), "responses": responses(cheap=refusal, strong=refusal)})
    op = doc["rows"]["policy"]
    # every answer fails no_refusal: best_answer returns the strongest of equally-failing candidates (the
    # strong model's: 1, 1, 0, 1); raise fails every request (quality 0). Every attempt made is paid.
    assert op[outcome_share] == 1.0
    assert op["quality"] == pytest.approx(quality)
    assert op["total_usd"] == pytest.approx(2 * CHEAP_USD + 4 * STRONG_USD)
    assert op["escalation_rate"] == (0.5 if mode == "best_answer" else 0.0)


def test_an_empty_answer_is_never_the_best_answer(tmp_path):
    blank = {p: "" for p in CHEAP_Q}
    doc = report(tmp_path, folder_kw={"outcomes": outcomes(), "responses": responses(cheap=blank, strong=blank)})
    op = doc["rows"]["policy"]
    assert op["failure_rate"] == 1.0 and op["best_answer_rate"] == 0.0 and op["quality"] == 0.0
    assert op["total_usd"] == pytest.approx(2 * CHEAP_USD + 4 * STRONG_USD)      # every attempt is still paid


def test_without_responses_checks_count_as_passed(tmp_path):
    doc = report(tmp_path, folder_kw={"outcomes": outcomes()})
    assert doc["checks"]["not_evaluated_counted_passed"] == {"non_empty": 4}
    assert any("no responses.parquet" in n for n in doc["notes"])
    assert doc["rows"]["policy"]["escalation_rate"] == 0.0


def test_answer_checker_is_batch_scored_and_thresholded(tmp_path):
    checker = "checks: [{name: answer_checker, artifact: fake, threshold: 0.5}]"
    answers = responses(cheap={"p1": "doubtful"})
    doc = report(tmp_path, {"checks: [non_empty]": checker}, folder_kw={"outcomes": outcomes(), "responses": answers},
                 answer_checkers={"fake": AnswerTable({"doubtful": 0.6})})
    assert doc["policy"]["checker_threshold"] == 0.5
    assert doc["rows"]["policy"]["escalation_rate"] == 0.25
    assert doc["rows"]["policy"]["total_usd"] == pytest.approx(2 * CHEAP_USD + 3 * STRONG_USD)


def test_the_rules_answer_checker_on_multiple_choice(tmp_path):
    prompts = [(p, f"{t}\nA. yes\nB. no", n) for p, t, n in PROMPTS]
    policy = write_policy(tmp_path, **{"checks: [non_empty]": "checks: [{name: answer_checker, artifact: rules}]"})
    folder = write_folder(tmp_path / "d", prompts, outcomes(),
                          responses(cheap={"p1": "The answer is (A)", "p2": "I think it is yes"}))
    scores = TableScorer({t: 0.0 for _, t, _ in prompts})                   # everything starts cheap
    doc = replay_report(str(policy), [folder], split="all", classifier=scores)
    # p2 has no extractable choice -> escalated; p3, p4 cheap answers "cheap answer to pX" -> escalated too
    assert doc["rows"]["policy"]["escalation_rate"] == 0.75


def test_per_request_budget_keeps_the_cheap_prefix_and_downgrades(tmp_path):
    budget = 'budgets:\n  store: "memory://"\n  per_request_usd: 0.005'
    doc = report(tmp_path, {'budgets:\n  store: "memory://"': budget})
    assert doc["rows"]["policy"]["strong_share"] == 0.0                  # the strong model never fits $0.005
    assert doc["traffic"]["answered"]["cheap"] == 1.0
    rejected = report(tmp_path, {'budgets:\n  store: "memory://"': budget + "\n  at_cap: reject"})
    assert rejected["rows"]["policy"]["refused_rate"] == 0.5            # q3, q4 asked for strong only


def test_prompts_without_every_outcome_are_left_out(tmp_path):
    rows = [o for o in outcomes() if not (o[0] == "p4" and o[1] == "S")] + [("p1", "C", 0.0, 500, None)]
    doc = report(tmp_path, folder_kw={"outcomes": rows, "responses": responses()})
    assert doc["data"]["n_requests"] == 3 and doc["data"]["n_dropped"] == 1
    assert doc["rows"]["always_cheap"]["quality"] == pytest.approx((0.5 + 0 + 1) / 3)   # p1's two rows averaged


def test_split_keeps_only_that_splits_prompts(tmp_path):
    from classifiers.splits import split_of
    texts = [f"question number {i}" for i in range(60)]
    prompts = [(f"p{i}", t, 100) for i, t in enumerate(texts)]
    rows = [(f"p{i}", m, 1.0, 10, None) for i in range(60) for m in ("C", "S")]
    folder = write_folder(tmp_path / "d", prompts, rows)
    policy = write_policy(tmp_path)
    for split in ("test", "calibration", "train"):
        run = run_replay(str(policy), [folder], split=split, classifier=TableScorer({}))
        assert run.data.prompts == [t for t in texts if split_of(t) == split]


def test_map_overrides_and_errors(tmp_path):
    policy = write_policy(tmp_path)
    folder = write_folder(tmp_path / "d", PROMPTS, outcomes() + [(p, "X", 1.0, 500, None) for p in CHEAP_Q],
                          responses(), meta={"source": "no pair"})
    with pytest.raises(ConfigError, match="--map cheap=MODEL"):
        run_replay(str(policy), [folder], split="all", classifier=SCORES)
    run = run_replay(str(policy), [folder], maps=["cheap=X", "strong=S"], split="all", classifier=SCORES)
    assert run.data.mappings == ({"cheap": "X", "strong": "S"},)
    assert run.engine.quality_units.sum() == 3 * 10**9                  # X always right; strong wrong on q3
    with pytest.raises(ConfigError, match="not a rung"):
        run_replay(str(policy), [folder], maps=["gpt=X"], split="all", classifier=SCORES)
    with pytest.raises(ConfigError, match="no outcome of model"):
        run_replay(str(policy), [folder], maps=["cheap=nope", "strong=S"], split="all", classifier=SCORES)
    with pytest.raises(ConfigError, match="ALIAS=DATASET_MODEL"):
        run_replay(str(policy), [folder], maps=["cheap"], split="all", classifier=SCORES)


def test_bad_folders_are_config_errors(tmp_path):
    policy = write_policy(tmp_path)
    with pytest.raises(ConfigError, match="no such data folder"):
        run_replay(str(policy), [tmp_path / "missing"], split="all")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not an outcome folder"):
        run_replay(str(policy), [tmp_path / "empty"], split="all")
    bad = write_folder(tmp_path / "bad", PROMPTS, outcomes())
    (bad / "outcomes.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot read"):
        run_replay(str(policy), [bad], split="all")
    with pytest.raises(ConfigError, match="--split"):
        run_replay(str(policy), [bad], split="dev")


def test_responses_are_not_read_when_no_check_needs_them(tmp_path):
    doc = report(tmp_path, {"checks: [non_empty]": "checks: []"})
    assert any("responses.parquet not read" in n for n in doc["notes"])


def test_several_folders_are_pooled(tmp_path):
    policy = write_policy(tmp_path)
    a = write_folder(tmp_path / "a", PROMPTS, outcomes(), responses())
    b = write_folder(tmp_path / "b", [("p1", "q1", 1000)], [("p1", "c2", 0.0, 500, None), ("p1", "s2", 1.0, 500, None)],
                     meta={"cheap": "c2", "strong": "s2"})
    doc = replay_report(str(policy), [a, b], split="all", classifier=SCORES)
    assert doc["data"]["n_requests"] == 5
    assert doc["data"]["models"][1] == {"cheap": "c2", "strong": "s2"}
    assert doc["by_source"][str(b)]["quality"] == 0.0                   # q1 goes cheap, c2 is wrong
