"""Every field a trace line can carry is documented in :mod:`cascade.trace`'s docstring: the lines the
Router, the shadow sampler and feedback write — text kept, shadow exploring and judged, a refusal —
and a RouteTrace with every optional field set, checked key by key (nested keys too)."""
from __future__ import annotations

import re

import pytest

import cascade.trace
from cascade.trace import AttemptRecord, RouteTrace, read_trace_records
from policies.checks import CheckOutcome
from policies.errors import InvalidRequestError
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, truncated

from .conftest import user_msg

DOCUMENTED = frozenset(re.findall(r'"(\w+)"', cascade.trace.__doc__ or ""))
QUESTION = "Calculate 6 times 7."


def keys_of(doc, where: str = "") -> set[str]:
    """Every key of a JSON line, nested ones too, as ``where.key`` (lists of objects looked into)."""
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(f"{where}{k}")
            out |= keys_of(v, f"{where}{k}.")
    elif isinstance(doc, list):
        for v in doc:
            out |= keys_of(v, where)
    return out


def undocumented(lines) -> set[str]:
    return {k for line in lines for k in keys_of(line) if k.rsplit(".", 1)[-1] not in DOCUMENTED}


def shadowed(judge: bool = False):
    return parse_policy("extends: default\nname: shadowed\nshadow: {rate: 1.0, models: [gpt-4o], "
                        "budget_usd_per_day: 5.0" + (", judge: {model: gpt-4o}" if judge else "")
                        + "}\n", source="shadowed.yaml")


def test_a_trace_with_every_optional_field_is_documented():
    trace = RouteTrace("r1", "default", 0.4, "text", user="alice", plan_reason="score 0.40 < 0.55",
                       session_id="s1", pinned=True, cache="miss", cache_saved_usd=0.1, cache_source="r0",
                       cache_embedding_usd=1e-7, request_digest="d", temperature=0.0)
    trace.add(AttemptRecord("deepseek-v2", "check_failed", "cheap first", 10, 5, 1e-6, 0.2, None,
                            [CheckOutcome("not_refusal", False, "a refusal", 0.9)], "stop", "text",
                            overrun_usd=1e-9, confidence={"mean_logprob": -0.1, "min_logprob": -2.0,
                                                          "answer_margin": 0.5, "n_tokens": 5}))
    trace.accepted("deepseek-v2", "best_answer", False)
    line = {**trace.to_dict(with_text=True), "ts": 0.0, "prompt": "q", "answer": "a"}
    assert undocumented([line]) == set()


async def test_every_field_written_by_the_router_shadow_and_feedback_is_documented(make_router, fake_provider):
    fake_provider.script("deepseek-chat", truncated("Six times seven: the answer is 42." + " ." * 17))
    fake_provider.script("gpt-4o", answer("42"))
    escalated = make_router(shadowed(), score=0.1, trace_text=True)          # explores, reuses the cheap answer
    resp = await escalated.acomplete(user_msg(QUESTION), user="alice", session_id="s-1")
    escalated.feedback(resp.cascade.request_id, 1.0, user="alice")
    await escalated.aclose()
    fake_provider.script("deepseek-chat", answer("It is 41."))
    routed_strong = make_router(shadowed(), score=0.9, trace_text=True)      # explores with a call of its own
    await routed_strong.acomplete(user_msg(QUESTION), user="alice")
    await routed_strong.aclose()
    fake_provider.script("deepseek-chat", answer("Paris is the capital, on the Seine, since the middle ages and "
                                                 "through every republic and empire of the country."))
    fake_provider.script("gpt-4o", answer(lambda msgs: "ADEQUATE" if "Candidate answer" in str(msgs)
                                          else "The capital of France is Paris, its largest city, seat of the "
                                               "government and of most national institutions of the country."))
    judged = make_router(shadowed(judge=True), score=0.1, trace_text=True)   # labelled by the judge
    await judged.acomplete(user_msg("Tell me about the capital of France."), user="bob")
    with pytest.raises(InvalidRequestError):                                  # a refused request's line
        await judged.acomplete([{"role": "wizard", "content": QUESTION}], user="carol")
    await judged.aclose()

    lines = read_trace_records(escalated.sink.path)
    shadow = [d for d in lines if d.get("kind") == "shadow"]
    assert {d.get("kind") for d in lines} == {None, "shadow", "feedback"}
    assert [d.get("explores") for d in shadow] == [True, True, None] and shadow[0].get("reused") is True
    assert shadow[2]["label"]["source"] == "judge" and "judge_answer" in shadow[2]
    assert any(d.get("outcome") == "refused" for d in lines)
    assert undocumented(lines) == set()
