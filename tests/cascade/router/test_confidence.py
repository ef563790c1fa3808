"""The cheap model's confidence end to end: the runtime asks models whose catalog declares the
``logprobs`` capability for token logprobs, the trace records mean / minimum logprob and the final
answer's margin, and a ``confidence`` check escalates an unsure answer. Direct and litellm
transports, whole answers and streams, against the local provider."""
from __future__ import annotations

import pytest

from policies.checks import CONFIDENCE_ABSTAINS
from policies.loader import parse_policy
from tests.harness.fake_provider import answer

from .conftest import user_msg
from .test_streaming import collect

CONFIDENT = """
extends: default
name: confident
escalation:
  checks: [non_empty, {name: confidence, min_mean_logprob: -1.0, min_margin: 1.0}]
"""
UNSTREAMED = CONFIDENT + "  stream_unchecked: true\n"
NO_LOGPROBS = CONFIDENT + """
catalog:
  deepseek-v2:
    capabilities: [text, json_mode, tools, streaming]
"""
QUESTION = "Calculate 6 times 7."


def policy(text: str = CONFIDENT):
    return parse_policy(text, source="confident.yaml")


def requests_of(fake_provider, model: str) -> list:
    return [r.body for r in fake_provider.tally.requests if r.model == model]


@pytest.mark.parametrize("transport", ["litellm", "direct"])
async def test_a_sure_answer_is_accepted_with_its_confidence_traced(make_router, fake_provider, transport):
    fake_provider.script("deepseek-chat", answer("6 times 7 is 42.", logprob=-0.25, margin=3.0))
    router = make_router(policy(), score=0.1, transport=transport)
    resp = await router.acomplete(user_msg(QUESTION))
    trace = resp.cascade
    assert trace.model == "deepseek-v2" and not trace.escalated
    conf = trace.attempts[0].confidence
    assert conf["mean_logprob"] == pytest.approx(-0.25) and conf["min_logprob"] == pytest.approx(-0.25)
    assert conf["answer_margin"] == pytest.approx(3.0) and conf["n_tokens"] == 6
    check = next(c for c in trace.attempts[0].checks if c.name == "confidence")
    assert check.passed and check.score == pytest.approx(-0.25)
    body = requests_of(fake_provider, "deepseek-chat")[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 2


@pytest.mark.parametrize("transport", ["litellm", "direct"])
@pytest.mark.parametrize("logprob, margin, why", [(-2.5, 3.0, "mean token logprob -2.500 < -1.0"),
                                                  (-0.1, 0.4, "final answer's top-1 minus top-2 logprob 0.400 < 1.0")])
async def test_an_unsure_answer_escalates(make_router, fake_provider, transport, logprob, margin, why):
    fake_provider.script("deepseek-chat", answer("It is 41.", logprob=logprob, margin=margin))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(policy(), score=0.1, transport=transport)
    resp = await router.acomplete(user_msg(QUESTION))
    trace = resp.cascade
    assert trace.model == "gpt-4o" and trace.escalated
    assert trace.attempts[0].status == "check_failed" and why in trace.attempts[0].reason
    assert trace.attempts[1].confidence is None                     # GPT-4o's catalog entry declares no logprobs
    assert "logprobs" not in requests_of(fake_provider, "gpt-4o")[0]


async def test_a_model_without_the_capability_is_not_asked_and_the_check_abstains(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("It is 41.", logprob=-9.0, margin=0.0))
    router = make_router(policy(NO_LOGPROBS), score=0.1)
    resp = await router.acomplete(user_msg(QUESTION))
    attempt = resp.cascade.attempts[0]
    assert resp.cascade.model == "deepseek-v2" and attempt.confidence is None
    check = next(c for c in attempt.checks if c.name == "confidence")
    assert check.passed and check.reason == CONFIDENCE_ABSTAINS
    assert "logprobs" not in requests_of(fake_provider, "deepseek-chat")[0]


async def test_a_buffered_stream_is_checked_on_its_logprobs(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("It is 41.", logprob=-3.0))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(policy(), score=0.1)
    stream = await router.acomplete(user_msg(QUESTION), stream=True)
    assert await collect(stream) == "42"
    first = stream.cascade.attempts[0]
    assert first.status == "check_failed" and first.confidence["mean_logprob"] == pytest.approx(-3.0)


async def test_a_direct_stream_records_its_confidence(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("6 times 7 is 42.", logprob=-0.5, margin=2.0))
    router = make_router(policy(UNSTREAMED), score=0.1)
    stream = await router.acomplete(user_msg(QUESTION), stream=True)
    assert await collect(stream) == "6 times 7 is 42."
    conf = stream.cascade.attempts[0].confidence
    assert conf["mean_logprob"] == pytest.approx(-0.5) and conf["answer_margin"] == pytest.approx(2.0)
