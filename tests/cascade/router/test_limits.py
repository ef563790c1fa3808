"""Issue 11 at the Router: work per request bounded before tokenizing, long prompts planned off the
event loop, honest Retry-After when reservations in flight are the cause, caps that hold when a
provider reports more tokens than were reserved for (streams cut at max_tokens, overruns flagged)."""
from __future__ import annotations

import threading

import pytest

from cascade.planning import OFF_LOOP_CHARS, check_prompt_size, default_max_prompt_chars, prompt_chars
from cascade.tokens import GIL_FREE_CHARS, count_text_tokens
from policies.budget import BudgetSnapshot, Cap, CapUsage
from policies.engine import decide
from policies.errors import BudgetExceeded, ConfigError, PromptTooLarge
from policies.loader import load_policy, parse_policy
from policies.request import Request
from tests.harness.fake_provider import answer

from .conftest import FixedScore, user_msg

DIRECT = "extends: default\nname: direct\nescalation: {stream_unchecked: true}\n"


class ThreadRecordingScore(FixedScore):
    """Records the thread each prompt is scored on (planning runs there)."""

    def __init__(self, value: float) -> None:
        super().__init__(value)
        self.threads: list[str] = []

    def score_one(self, text: str) -> float:
        self.threads.append(threading.current_thread().name)
        return self.value


# ---- bounded before tokenizing -------------------------------------------------------------------------

def test_prompt_chars_counts_text_and_trusts_nothing():
    messages = [{"role": "user", "content": "abc"}, {"role": "user", "content": [{"type": "text", "text": "de"},
                {"type": "image_url", "image_url": "x" * 99}, "junk", {"text": 5}]}, "junk", {"content": None}]
    assert prompt_chars(messages) == 5 and prompt_chars("not a list") == 0 and prompt_chars(None) == 0


def test_text_file_parts_count_and_documents_do_not():
    """A text file part is prompt text (read, not OCR'd): its data counts towards the limit; a PDF's does not."""
    text_file = {"type": "file", "file": {"file_data": "data:text/plain;base64," + "QUJD" * 100}}
    pdf = {"type": "file", "file": {"file_data": "data:application/pdf;base64," + "QUJD" * 100}}
    assert prompt_chars([{"role": "user", "content": [text_file]}]) == len(text_file["file"]["file_data"])
    assert prompt_chars([{"role": "user", "content": [pdf]}]) == 0
    with pytest.raises(PromptTooLarge):
        check_prompt_size([{"role": "user", "content": [text_file]}], 100)


def test_the_default_limit_is_8_characters_per_token_of_the_largest_window():
    assert default_max_prompt_chars(load_policy("default")) == 8 * 128_000
    with pytest.raises(PromptTooLarge) as info:
        check_prompt_size(user_msg("x" * 11), 10)
    assert (info.value.chars, info.value.limit) == (11, 10) and "max_prompt_chars" in str(info.value)


async def test_a_prompt_over_max_prompt_chars_is_refused_before_anything(make_router, fake_provider):
    router = make_router(max_prompt_chars=1_000)
    with pytest.raises(PromptTooLarge):
        await router.acomplete(user_msg("y" * 1_001))
    with pytest.raises(PromptTooLarge):
        router.route(user_msg("y" * 1_001))
    assert fake_provider.tally.requests == [] and router.store.ledger() == []
    await router.acomplete(user_msg("y" * 1_000))


@pytest.mark.parametrize("value", [0, -5, True, 2.5])
def test_a_bad_max_prompt_chars_is_a_config_error(make_router, value):
    with pytest.raises(ConfigError, match="max_prompt_chars must be a positive integer"):
        make_router(max_prompt_chars=value)


async def test_long_prompts_are_planned_in_the_planning_pool(make_router, fake_provider):
    """Finding 1: planning (describe, tokenize, score) of a long prompt ran on the event loop."""
    router = make_router()
    score = ThreadRecordingScore(0.1)
    router.classifier = score
    await router.acomplete(user_msg("short"), max_tokens=8)
    await router.acomplete(user_msg("long " * (OFF_LOOP_CHARS // 5 + 1)), max_tokens=8)
    assert not score.threads[0].startswith("cascade-plan") and score.threads[1].startswith("cascade-plan")


def test_long_texts_are_counted_the_same_without_the_gil():
    text = "héllo wörld, 数据 " * (GIL_FREE_CHARS // 8)
    from cascade.tokens import _get_tokenizer
    assert len(text) >= GIL_FREE_CHARS
    assert count_text_tokens(text) == len(_get_tokenizer().encode(text, add_special_tokens=False).ids)


# ---- Retry-After when reservations in flight stand in the way ------------------------------------------------

def _snapshot(spent: float, reserved: float) -> BudgetSnapshot:
    return BudgetSnapshot((CapUsage(Cap("user", "day", 0.02), spent, reserved),))


@pytest.mark.parametrize("spent, reserved, in_flight", [(0.0, 0.0199, True), (0.0199, 0.0, False),
                                                        (0.015, 0.0049, True)])
def test_the_engine_says_when_only_reservations_stand_in_the_way(spent, reserved, in_flight):
    policy = parse_policy("extends: default\nname: rej\nbudgets: {at_cap: reject}\n", source="rej.yaml")
    request = Request(text="hi", prompt_tokens=10, max_tokens=4000)      # deepseek-v2: $0.0011 held
    with pytest.raises(BudgetExceeded) as info:
        decide(policy, request, 0.1, _snapshot(spent, reserved))
    assert info.value.in_flight is in_flight and ("in flight" in str(info.value)) is in_flight


def test_retry_after_is_the_settle_time_not_the_window_reset(make_router):
    router = make_router()
    settled = router.with_retry_after(BudgetExceeded("held", scope="user", window="day", in_flight=True))
    assert 1 <= settled.retry_after <= 60
    reset = router.with_retry_after(BudgetExceeded("spent", scope="user", window="day"))
    assert reset.retry_after > 60 or reset.retry_after >= settled.retry_after      # (seconds before midnight)


# ---- caps hold when providers over-report --------------------------------------------------------------------

async def test_an_over_reported_usage_is_recorded_flagged_and_counted_at_once(make_router, fake_provider):
    """Finding 5: with max_tokens 16 a user spent $0.036 against a $0.02 cap."""
    fake_provider.script("deepseek-chat", answer("ok", prompt_tokens=10, completion_tokens=100_000))
    router = make_router(user_cap_usd=0.02, cap_window="day")
    resp = await router.acomplete(user_msg("hi"), user="alice", max_tokens=16)
    trace = resp.cascade
    cost = (10 * 0.14 + 100_000 * 0.28) / 1e6
    assert trace.cost_usd == pytest.approx(cost) and router.store.total_spent(user="alice") == pytest.approx(cost)
    reserved = router.route(user_msg("hi"), max_tokens=16).plan.attempts[0].est_cost_usd
    assert trace.overrun_usd == pytest.approx(cost - reserved)
    assert trace.overrun_usd > 0.027 and "overrun" in trace.attempts[0].reason
    assert trace.to_dict()["overrun_usd"] == trace.overrun_usd
    with pytest.raises(BudgetExceeded) as info:             # over the cap now: the next one is refused
        await router.acomplete(user_msg("hi"), user="alice", max_tokens=16)
    assert info.value.in_flight is False and info.value.retry_after > 0
    assert len(fake_provider.tally.requests) == 1


@pytest.mark.parametrize("direct", [True, False])
async def test_a_stream_that_ignores_max_tokens_is_cut(make_router, fake_provider, direct):
    """Finding 5: a stream was charged $2.28 against the $0.50 per-request cap."""
    long_answer = "lorem ipsum dolor sit amet " * 400                     # ~2,400 tokens, max_tokens 16
    fake_provider.script("*", answer(long_answer, prompt_tokens=10, completion_tokens=50_000))
    policy = parse_policy(DIRECT, source="direct.yaml") if direct else "default"
    router = make_router(policy)
    stream = await router.acomplete(user_msg("hi"), stream=True, max_tokens=16)
    text = ""
    async for chunk in stream:
        text += "".join(c.delta.content or "" for c in chunk.choices)
    first = stream.cascade.attempts[0]
    assert first.finish_reason == "length" and len(text) < 400
    assert count_text_tokens(text) <= int(16 * 1.25) + 16 + 8           # the cap, plus the chunk that crossed it
    assert first.completion_tokens < 60 and stream.cascade.cost_usd < 50 * 10 / 1e6
    assert router.store.total_spent() == pytest.approx(stream.cascade.cost_usd, abs=1e-12)
