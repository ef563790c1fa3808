"""What the catalog's card facts mean for routing, through the public Router: JSON mode vs structured
outputs vs tools for image requests, and documents estimated per page (context fit, reservation)."""
from __future__ import annotations

import json

import pytest

from cascade.router import Router
from cascade.tokens import (TOKENS_PER_DOCUMENT_PAGE, TOKENS_PER_IMAGE, TOKENS_PER_MESSAGE, count_text_tokens,
                           text_token_bound)
from tests.harness.fake_provider import answer
from tests.policies.documents import data_uri, pdf_bytes

from .conftest import FixedScore

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
QUESTION = "What is in this picture?"
IMAGE_MESSAGES = [{"role": "user", "content": [IMAGE, {"type": "text", "text": QUESTION}]}]
JSON_OBJECT = {"type": "json_object"}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "caption", "schema": {
    "type": "object", "properties": {"caption": {"type": "string"}}, "required": ["caption"]}}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture
def default_router(monkeypatch, tmp_path):
    monkeypatch.setenv("CASCADE_BUDGET_STORE", "memory://")
    monkeypatch.setenv("HOME", str(tmp_path))
    routers = []

    def make(**kw):
        routers.append(Router("default", **kw))
        return routers[-1]

    yield make
    for router in routers:
        router.close()


def models(routed) -> list[str]:
    return [a.model for a in routed.plan.attempts]


def assert_estimate(routed, beyond_text: int) -> None:
    """Prompt tokens = the text's tokens (counted exactly, or bounded by its bytes when no window is
    near) + ``beyond_text``."""
    text = routed.request.text
    assert routed.request.prompt_tokens - beyond_text in (count_text_tokens(text), text_token_bound(text))


# ---- the bar: Router("default").route(image + text, response_format=...) --------------------------------

def test_a_json_object_image_request_starts_at_deepseek_vl2(default_router):
    router = default_router()
    routed = router.route(IMAGE_MESSAGES, response_format=JSON_OBJECT)
    assert routed.score < router.policy.routing.thresholds[0]       # an easy prompt: cheap model first
    assert models(routed) == ["deepseek-vl2", "gpt-4o"] and routed.plan.skipped == ()


@pytest.mark.parametrize("params, missing", [
    ({"response_format": JSON_SCHEMA}, "lacks json_schema"),
    ({"tools": TOOLS}, "lacks tools"),
    ({"response_format": JSON_OBJECT, "tools": TOOLS}, "lacks tools"),
])
def test_a_json_schema_or_tool_calling_image_request_does_not(default_router, params, missing):
    routed = default_router().route(IMAGE_MESSAGES, **params)
    assert models(routed) == ["gpt-4o"]
    assert [(s.model, s.reason) for s in routed.plan.skipped] == [("deepseek-vl2", missing)]


def test_a_json_schema_text_request_skips_deepseek_v2(default_router):
    routed = default_router(classifier=FixedScore(0.0)).route([{"role": "user", "content": "Name a prime."}],
                                                              response_format=JSON_SCHEMA)
    assert models(routed) == ["gpt-4o"] and routed.plan.skipped[0].reason == "lacks json_schema"


def test_vl2_answers_up_to_its_4k_output_when_the_image_leaves_room(default_router):
    routed = default_router(classifier=FixedScore(0.0)).route(IMAGE_MESSAGES, max_tokens=2_000)
    assert routed.plan.attempts[0].model == "deepseek-vl2" and routed.plan.attempts[0].max_tokens == 2_000


# ---- documents: pages x 1,120 tokens --------------------------------------------------------------------

def document_messages(pages: int) -> list[dict]:
    part = {"type": "file", "file": {"filename": "scan.pdf", "file_data": data_uri(pdf_bytes(pages))}}
    return [{"role": "user", "content": [{"type": "text", "text": "Transcribe this scan."}, part]}]


def test_a_document_is_estimated_per_page_for_fit_and_reservation(default_router):
    router = default_router(classifier=FixedScore(0.0))
    routed = router.route(document_messages(6))
    assert_estimate(routed, TOKENS_PER_MESSAGE + 6 * TOKENS_PER_DOCUMENT_PAGE)
    ocr = routed.plan.attempts[0]
    assert ocr.model == "deepseek-ocr-2" and ocr.max_tokens == 1024
    price = router.policy.catalog["deepseek-ocr-2"].price
    assert ocr.est_cost_usd == pytest.approx(price.cost(routed.request.prompt_tokens, 1024))


def test_a_document_too_long_for_ocr_2s_window_goes_to_gpt_4o(default_router):
    # 7 pages x 1,120 + 1,024 output tokens > 8,192: DeepSeek-OCR-2 cannot take it
    routed = default_router(classifier=FixedScore(0.0)).route(document_messages(7))
    assert models(routed) == ["gpt-4o"]
    assert "context window 8,192" in routed.plan.skipped[0].reason


def test_images_keep_their_own_estimate(default_router):
    assert_estimate(default_router().route(IMAGE_MESSAGES), TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE)


# ---- over HTTP: the call that reaches each model ---------------------------------------------------------

async def test_json_object_image_request_is_answered_by_vl2_in_json_mode(make_router, fake_provider):
    fake_provider.script("deepseek-vl2", answer('{"caption": "a cat"}'))
    resp = await make_router(score=0.1).acomplete(IMAGE_MESSAGES, response_format=JSON_OBJECT)
    assert resp.cascade.model == "deepseek-vl2"
    (sent,) = [r for r in fake_provider.tally.requests if r.model == "deepseek-vl2"]
    assert sent.body["response_format"] == JSON_OBJECT and "image_url" in json.dumps(sent.body)


async def test_json_schema_image_request_never_reaches_vl2(make_router, fake_provider):
    fake_provider.script("gpt-4o", answer('{"caption": "a cat"}'))
    resp = await make_router(score=0.1).acomplete(IMAGE_MESSAGES, response_format=JSON_SCHEMA)
    assert resp.cascade.model == "gpt-4o"
    assert {r.model for r in fake_provider.tally.requests} == {"gpt-4o"}
