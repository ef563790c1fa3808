"""The built-in catalog states what the model cards state, in every built-in policy file (a file that
``extends`` another is checked as loaded, so an override that drifts from a card fails here too)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from cascade.tokens import TOKENS_PER_DOCUMENT_PAGE
from policies.engine import decide
from policies.errors import ConfigError, InvalidRequestError
from policies.loader import BUILTIN_POLICIES, load_policy, parse_policy
from policies.request import Request

POLICY_FILES = sorted(p.stem for p in Path(str(resources.files("policies"))).glob("*.yaml"))

FACTS = {
    "context_window": lambda s: s.context_window,
    "max_output_tokens": lambda s: s.max_output_tokens,
    "input_per_1m": lambda s: s.price.input_per_1m,
    "output_per_1m": lambda s: s.price.output_per_1m,
    "image_input": lambda s: "vision" in s.capabilities,
    "document_input": lambda s: "document_ocr" in s.capabilities,
    "json_mode": lambda s: "json_mode" in s.capabilities,          # response_format {"type": "json_object"}
    "json_schema": lambda s: "json_schema" in s.capabilities,      # response_format {"type": "json_schema"}
    "tools": lambda s: "tools" in s.capabilities,
}

CARDS: dict[str, dict[str, object]] = {
    # DeepSeek-V2 card / DeepSeek chat API (deepseek-chat at the time): 128K context, 4K output (8K beta), JSON mode, function calling, text only, $0.14/$0.28
    "deepseek-v2": dict(context_window=128_000, max_output_tokens=4_096, input_per_1m=0.14, output_per_1m=0.28,
                        image_input=False, document_input=False, json_mode=True, json_schema=False, tools=True),
    # DeepSeek-VL2 card: context 4K, max tokens 4K, image input, JSON mode yes, structured outputs no, tools no, $0.15/$0.15
    "deepseek-vl2": dict(context_window=4_096, max_output_tokens=4_096, input_per_1m=0.15, output_per_1m=0.15,
                         image_input=True, document_input=False, json_mode=True, json_schema=False, tools=False),
    # DeepSeek-OCR-2 card: image (document) input, $0.031/$0.031, no JSON mode or tools listed; config.json: 8,192 positions
    "deepseek-ocr-2": dict(context_window=8_192, input_per_1m=0.031, output_per_1m=0.031,
                           image_input=True, document_input=True, json_mode=False, json_schema=False, tools=False),
    # GPT-4o (OpenAI model page, gpt-4o-2024-08-06): 128K context, 16,384 output, image and PDF input, JSON mode, structured outputs, tools, $2.50/$10.00
    "gpt-4o": dict(context_window=128_000, max_output_tokens=16_384, input_per_1m=2.50, output_per_1m=10.00,
                   image_input=True, document_input=True, json_mode=True, json_schema=True, tools=True),
}
ROWS = [(model, fact, value) for model, card in CARDS.items() for fact, value in card.items()]


def test_every_policy_file_is_a_builtin_policy():
    assert POLICY_FILES == sorted(BUILTIN_POLICIES)


@pytest.mark.parametrize("policy_name", POLICY_FILES)
@pytest.mark.parametrize("model, fact, card_value", ROWS, ids=[f"{m}.{f}" for m, f, _ in ROWS])
def test_catalog_fact_matches_the_card(policy_name, model, fact, card_value):
    spec = load_policy(policy_name).catalog[model]
    assert FACTS[fact](spec) == card_value


def test_deepseek_ocr_2_pages_are_estimated_at_the_cards_worst_case():
    # DeepSeek-OCR-2 card: 256-1,120 visual tokens per page
    assert TOKENS_PER_DOCUMENT_PAGE == 1_120


@pytest.mark.parametrize("policy_name", POLICY_FILES)
def test_every_model_of_the_cards_is_in_the_catalog(policy_name):
    assert set(CARDS) <= set(load_policy(policy_name).catalog)


# ---- policies written before json_schema existed --------------------------------------------------------

OLD_POLICY = """\
name: written-before-json-schema
catalog:
  cheap:
    litellm_model: openai/cheap
    price: {input_per_1m: 0.1, output_per_1m: 0.2}
    context_window: 32000
    capabilities: [text, json_mode, tools]
    strength: 1
  strong:
    litellm_model: openai/strong
    price: {input_per_1m: 2.5, output_per_1m: 10}
    context_window: 128000
    capabilities: [text, vision, json_mode, tools, streaming]
    strength: 10
escalation:
  ladders: {text: [cheap, strong], vision: [strong]}
"""


def test_a_policy_with_the_old_capability_names_loads_and_json_mode_keeps_its_meaning():
    policy = parse_policy(OLD_POLICY, source="old.yaml")
    assert policy.catalog["cheap"].capabilities == {"text", "json_mode", "tools"}
    json_object = Request("q", 100, json_output="json_object")
    assert [a.model for a in decide(policy, json_object, 0.0).attempts] == ["cheap", "strong"]
    # a JSON-schema request needs a model that declares structured outputs: the refusal says which is missing
    with pytest.raises(InvalidRequestError, match="cheap: lacks json_schema; strong: lacks json_schema"):
        decide(policy, Request("q", 100, json_output="json_schema"), 0.0)


def test_an_unknown_capability_names_the_file_the_field_and_the_choices():
    text = OLD_POLICY.replace("[text, json_mode, tools]", "[text, structured_outputs, tools]")
    with pytest.raises(ConfigError) as info:
        parse_policy(text, source="old.yaml")
    message = str(info.value)
    assert "old.yaml:7" in message and "catalog.cheap.capabilities.1" in message
    assert "'structured_outputs' is not one of: text, vision, document_ocr, json_mode, json_schema" in message
