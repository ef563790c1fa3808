"""Shadow sampling end to end against the local provider: the caller's answer never waits for the
shadow call, the shadow answer and its label are traced beside the request, the shadow spend is
reserved against its own cap (never the user's), close drains, failures are only logged."""
from __future__ import annotations

import asyncio

import pytest

from cascade.trace import read_trace_records, read_traces
from policies.learning import SHADOW_USER, sampled
from policies.loader import parse_policy
from tests.harness.fake_provider import answer, http_error, timeout, truncated

from .conftest import user_msg

QUESTION = "Calculate 6 times 7."


def shadowed(rate: float = 1.0, *, budget: float = 5.0, drain_s: float = 30.0, judge: bool = False,
             user_cap: float | None = None) -> object:
    text = (f"extends: default\nname: shadowed\nshadow: {{rate: {rate}, models: [gpt-4o], "
            f"budget_usd_per_day: {budget}, drain_s: {drain_s}"
            + (", judge: {model: gpt-4o}" if judge else "") + "}\n")
    if user_cap is not None:
        text += f"budgets: {{per_user: [{{window: day, usd: {user_cap}}}]}}\n"
    return parse_policy(text, source="shadowed.yaml")


def shadow_lines(router) -> list[dict]:
    return [d for d in read_trace_records(router.sink.path) if d.get("kind") == "shadow"]


async def held(fake_provider, model: str) -> None:
    """Until the provider has received a call of ``model`` (it holds it: scripted latency)."""
    for _ in range(2000):
        if fake_provider.tally[model].n_requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{model} was never called")


def test_the_sample_is_a_reproducible_share_of_request_ids():
    ids = [f"req-{i}" for i in range(4000)]
    picked = [i for i in ids if sampled(i, 0.3, seed=7)]
    assert picked == [i for i in ids if sampled(i, 0.3, seed=7)]
    assert 0.27 < len(picked) / len(ids) < 0.33
    assert picked != [i for i in ids if sampled(i, 0.3, seed=8)]
    assert not any(sampled(i, 0.0) for i in ids) and all(sampled(i, 1.0) for i in ids)


async def test_the_answer_returns_while_the_shadow_call_is_held(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("6 times 7 is 42.", prompt_tokens=20, completion_tokens=8))
    fake_provider.script("gpt-4o", answer("42", latency=3.0, prompt_tokens=20, completion_tokens=2))
    router = make_router(shadowed(), score=0.1, trace_text=True)
    resp = await router.acomplete(user_msg(QUESTION), user="alice")
    assert resp.cascade.model == "deepseek-v2"
    await held(fake_provider, "gpt-4o")
    assert fake_provider.tally["gpt-4o"].n_completions == 0 and router.shadow.pending == 1
    assert shadow_lines(router) == []
    await router.aclose()                                    # drains the shadow call
    [line] = shadow_lines(router)
    assert line["request_id"] == resp.cascade.request_id and line["model"] == "gpt-4o"
    assert line["status"] == "ok" and line["answered_by"] == "deepseek-v2" and line["answer"] == "42"
    assert line["label"] == {"adequate": True, "source": "agreement", "reason": ""}
    assert line["cost_usd"] == pytest.approx((20 * 2.5 + 2 * 10.0) / 1e6)
    spend = {e.user: e.cost_usd for e in router.store.ledger(request_id=resp.cascade.request_id)}
    assert spend[SHADOW_USER] == pytest.approx(line["cost_usd"])
    assert router.store.total_spent(user="alice") == pytest.approx(resp.cascade.cost_usd)
    assert len(read_traces(router.sink.path)) == 1            # request lines only


async def test_a_disagreeing_strong_answer_labels_the_cheap_one_inadequate(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("It is 41."))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(shadowed(), score=0.1)
    await router.acomplete(user_msg(QUESTION))
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["label"]["adequate"] is False and "answer" not in line      # the sink keeps no text


async def test_the_judge_labels_what_final_answers_cannot(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("Paris is the capital, on the Seine, since the middle ages and "
                                                 "through every republic and empire of the country."))
    fake_provider.script("gpt-4o", answer(lambda msgs: "INADEQUATE" if "Candidate answer" in str(msgs)
                                          else "The capital of France is Paris, its largest city, seat of the "
                                               "government and of most national institutions of the country."))
    router = make_router(shadowed(judge=True), score=0.1, trace_text=True)
    await router.acomplete(user_msg("Tell me about the capital of France."))
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["label"] == {"adequate": False, "source": "judge", "reason": ""}
    assert line["judge"]["model"] == "gpt-4o" and line["judge"]["verdict"] is False
    assert line["judge"]["cost_usd"] > 0 and line["judge_answer"] == "INADEQUATE"
    assert fake_provider.tally["gpt-4o"].n_completions == 2


async def test_no_shadow_when_unsampled_or_answered_by_an_unlisted_strongest(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(shadowed(rate=0.0), score=0.1)
    await router.acomplete(user_msg(QUESTION))
    await router.aclose()
    unlisted = parse_policy("extends: default\nname: s\nshadow: {rate: 1, models: [deepseek-coder]}\n", source="s")
    strong = make_router(unlisted, score=0.9)               # straight to GPT-4o, which the shadow does not list
    await strong.acomplete(user_msg(QUESTION))
    await strong.aclose()
    assert shadow_lines(router) == []
    assert fake_provider.tally["gpt-4o"].n_requests == 1 and fake_provider.tally["deepseek-chat"].n_requests == 1


async def test_a_request_routed_to_the_strong_model_shadows_the_skipped_cheap_rung(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("It is 41.", latency=3.0, prompt_tokens=20, completion_tokens=5))
    fake_provider.script("gpt-4o", answer("42", prompt_tokens=20, completion_tokens=2))
    router = make_router(shadowed(), score=0.9, trace_text=True)
    resp = await router.acomplete(user_msg(QUESTION), user="alice")
    assert resp.cascade.model == "gpt-4o" and not resp.cascade.escalated
    await held(fake_provider, "deepseek-chat")                # the caller had its answer before the cheap call ended
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["explores"] is True and line["answered_by"] == "gpt-4o" and line["model"] == "deepseek-v2"
    assert line["status"] == "ok" and line["answer"] == "It is 41." and "reused" not in line
    assert line["label"] == {"adequate": False, "source": "agreement", "reason": ""}
    assert line["cost_usd"] == pytest.approx((20 * 0.14 + 5 * 0.28) / 1e6)
    spend = {e.user: e.cost_usd for e in router.store.ledger(request_id=resp.cascade.request_id)}
    assert spend[SHADOW_USER] == pytest.approx(line["cost_usd"])       # the shadow cap, not alice's
    assert router.store.total_spent(user="alice") == pytest.approx(resp.cascade.cost_usd)
    from cascade.learning.labels import judged_answer, read_labelled
    [row] = read_labelled(router.sink.path, only_labelled=True)
    assert row["label"]["model"] == "deepseek-v2" and row["label"]["quality"] == 0.0
    assert judged_answer(row) == "It is 41."
    qualities = {a["model"]: a.get("quality") for a in row["attempts"]}
    assert qualities == {"gpt-4o": 1.0, "deepseek-v2": 0.0}       # the returned answer is the reference


async def test_an_escalated_request_labels_the_cheap_answer_it_already_has(make_router, fake_provider):
    fake_provider.script("deepseek-chat", truncated("Six times seven: the answer is 42." + " ." * 17))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(shadowed(), score=0.1, trace_text=True)
    resp = await router.acomplete(user_msg(QUESTION))
    assert resp.cascade.model == "gpt-4o" and resp.cascade.escalated
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["explores"] is True and line["reused"] is True and line["cost_usd"] == 0.0
    assert line["label"]["adequate"] is True
    assert fake_provider.tally["deepseek-chat"].n_requests == 1        # no second cheap call
    from cascade.learning.labels import read_labelled
    from cascade.learning.train import both_rungs
    [row] = read_labelled(router.sink.path, only_labelled=True)
    cheap = [a for a in row["attempts"] if a["model"] == "deepseek-v2"]
    assert [a["status"] for a in cheap] == ["check_failed"] and cheap[0]["quality"] == 1.0 and both_rungs(row)


async def test_exploring_calls_are_held_to_the_shadow_cap(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(shadowed(budget=0.0), score=0.9)
    await router.acomplete(user_msg(QUESTION))
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["status"] == "skipped" and "budget" in line["error"]
    assert fake_provider.tally["deepseek-chat"].n_requests == 0


async def test_the_shadow_cap_is_its_own(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", answer("42"))
    router = make_router(shadowed(budget=0.0, user_cap=1.0), score=0.1)
    resp = await router.acomplete(user_msg(QUESTION), user="bob")
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["status"] == "skipped" and "budget" in line["error"] and line["cost_usd"] == 0
    assert fake_provider.tally["gpt-4o"].n_requests == 0
    assert resp.cascade.outcome == "ok"


async def test_a_failing_shadow_call_is_logged_not_raised(make_router, fake_provider, caplog):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", http_error(400))
    router = make_router(shadowed(), score=0.1)
    resp = await router.acomplete(user_msg(QUESTION))
    await router.aclose()
    [line] = shadow_lines(router)
    assert resp.cascade.outcome == "ok" and line["status"] == "error" and "BadRequestError" in line["error"]


async def test_close_stops_waiting_at_the_drain_deadline(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", timeout(1.0))    # held, then a 504: nothing billed
    router = make_router(shadowed(drain_s=0.2), score=0.1)
    await router.acomplete(user_msg(QUESTION))
    await held(fake_provider, "gpt-4o")
    await router.aclose()
    [line] = shadow_lines(router)
    assert line["status"] == "cancelled" and router.shadow.pending == 0


def test_sync_close_drains_the_shadow_calls(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    fake_provider.script("gpt-4o", answer("42", latency=0.5))
    router = make_router(shadowed(), score=0.1)
    router.complete(user_msg(QUESTION))
    router.close()
    [line] = shadow_lines(router)
    assert line["status"] == "ok" and line["label"]["adequate"] is True
