"""Per-kind abstention on real answer texts (../shared/data responses.parquet): the shipped answer checker
judges multiple-choice answers that reason before their letter, and shorter multiple-choice answers only
where a rule fails (no stated letter); it abstains on everything else (bare letters, code, open text); an
``extract: auto`` agreement check does not consult a second model on code."""
from __future__ import annotations

from pathlib import Path

import pytest

from cascade.replay.arrow import unwrap_response
from classifiers.extract import checker_judges, prompt_kind
from policies.checks import CHECKER_ABSTAINS, Answer, build_check, consults
from policies.schema import CheckSpec

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CHEAP = {"mmlu_pro": "DeepSeek-V2-Chat(api,2024-05)", "routerbench_subset": "mistralai/mixtral-8x7b-chat"}
needs_data = pytest.mark.skipif(not all((DATA / f / "responses.parquet").exists() for f in CHEAP),
                                reason="shared data not present")

# (folder, prompt_id, prompt kind, the shipped checker judges the cheap model's real answer)
TABLE = [
    ("mmlu_pro", "mmlu-pro-10774", "choice", True),          # reasoning, then "the answer is (X)"
    ("mmlu_pro", "mmlu-pro-10775", "choice", True),
    ("mmlu_pro", "mmlu-pro-4727", "choice", False),          # too short to judge
    ("mmlu_pro", "mmlu-pro-5018", "choice", False),
    ("mmlu_pro", "mmlu-pro-2253", "text", False),            # no option lines the checker knows
    ("routerbench_subset", "routerbench-mbpp.dev.1", "code", False),
    ("routerbench_subset", "routerbench-mbpp.dev.101", "code", False),
    ("routerbench_subset", "routerbench-arc-challenge.test.1", "choice", False),   # a bare letter
    ("routerbench_subset", "routerbench-winogrande.dev.1", "choice", False),
    ("routerbench_subset", "routerbench-winogrande.dev.318", "choice", True),     # "Randy": no letter (a rule)
    ("routerbench_subset", "routerbench-arc-challenge.val.171", "choice", True),  # "13": no letter
]


@pytest.fixture(scope="module")
def texts():
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    out = {}
    for folder, model in CHEAP.items():
        ids = [pid for f, pid, _, _ in TABLE if f == folder]
        prompts = pq.read_table(DATA / folder / "prompts.parquet", columns=["prompt_id", "prompt"])
        prompts = prompts.filter(pc.is_in(prompts["prompt_id"], value_set=pa.array(ids))).to_pydict()
        answers = pq.read_table(DATA / folder / "responses.parquet")
        answers = answers.filter(pc.equal(answers["model"], model)).to_pydict()
        by_id = dict(zip(answers["prompt_id"], answers["response"]))
        # RouterBench stores "['A\\n']": the answer a provider returned is its one string (as replay reads it)
        out.update({pid: (p, unwrap_response(by_id[pid])) for pid, p in zip(prompts["prompt_id"], prompts["prompt"])})
    return out


@needs_data
@pytest.mark.parametrize("folder, pid, kind, judged", TABLE, ids=[row[1] for row in TABLE])
def test_the_shipped_checker_judges_or_abstains_by_kind(texts, folder, pid, kind, judged):
    from classifiers import load_answer_checker
    prompt, answer = texts[pid]
    assert prompt_kind(prompt) == kind
    assert checker_judges(prompt, answer) is judged
    out = build_check("answer_checker", {"threshold": 0.0}, scorer=load_answer_checker("default"))(
        Answer(prompt=prompt, text=answer))
    if judged:             # threshold 0: every judged answer fails, with the checker's score
        assert not out.passed and out.score is not None
    else:
        assert out.passed and out.reason == CHECKER_ABSTAINS and out.score is None


@needs_data
@pytest.mark.parametrize("folder, pid, kind, judged", TABLE, ids=[row[1] for row in TABLE])
def test_agreement_auto_consults_except_on_code(texts, folder, pid, kind, judged):
    prompt, _ = texts[pid]
    spec = CheckSpec(name="agreement", params=(("extract", "auto"), ("with", "deepseek-coder")))
    assert consults(spec, prompt) is (kind != "code")
