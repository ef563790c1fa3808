"""``describe_messages`` (pure shape validation) and ``cascade.planning.build_request`` / ``route``."""
from __future__ import annotations

import base64

import pytest
from pydantic import BaseModel

from cascade.planning import build_request, route
from cascade.tokens import TOKENS_PER_DOCUMENT_PAGE, TOKENS_PER_IMAGE, TOKENS_PER_MESSAGE, count_text_tokens
from policies.errors import CascadeError, InvalidRequestError
from policies.loader import load_policy
from policies.request import MessageFacts, Request, describe_messages
from tests.policies.documents import data_uri, pdf_bytes, tiff_bytes

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 fake").decode()
TIFF = "data:image/tiff;base64,SUkqAA=="


def user(content):
    return {"role": "user", "content": content}


CONVERSATION = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "Prove that there are infinitely many primes."},
    {"role": "assistant", "content": "Suppose there are finitely many primes p1..pn."},
    {"role": "user", "content": [{"type": "text", "text": "Continue the proof, please."}]},
]


# ---- describe_messages: facts -----------------------------------------------------------------------------

def test_whole_conversation_text_in_order():
    facts = describe_messages(CONVERSATION)
    assert facts == MessageFacts(
        text="You are a careful mathematician.\nProve that there are infinitely many primes.\n"
             "Suppose there are finitely many primes p1..pn.\nContinue the proof, please.",
        n_images=0, n_documents=0)


def test_single_string_message():
    assert describe_messages([user("hi")]) == MessageFacts("hi", 0, 0)


def test_tuple_of_messages_is_accepted():
    assert describe_messages((user("a"), user("b"))).text == "a\nb"


@pytest.mark.parametrize("content, images, documents, text", [
    ([{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PNG}}], 1, 0,
     "what is this?"),
    ([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
      {"type": "image_url", "image_url": "https://example.com/b.jpg"},
      {"type": "input_image", "image_url": PNG}], 3, 0, ""),
    ([{"type": "image_url", "image_url": {"url": PDF}}], 0, 1, ""),
    ([{"type": "image_url", "image_url": {"url": TIFF}}], 0, 1, ""),
    ([{"type": "file", "file": {"filename": "scan.pdf", "file_data": PDF}}], 0, 1, ""),
    ([{"type": "input_file", "file_id": "file-123"}], 0, 1, ""),
    ([{"type": "file", "file": {"file_id": "file-9"}}, {"type": "image_url", "image_url": {"url": PNG}},
      {"type": "input_text", "text": "compare"}], 1, 1, "compare"),
    ([], 0, 0, ""),
])
def test_parts_are_counted(content, images, documents, text):
    facts = describe_messages([user(content)])
    assert (facts.n_images, facts.n_documents, facts.text) == (images, documents, text)


def test_images_across_turns_are_all_counted():
    messages = [user([{"type": "image_url", "image_url": {"url": PNG}}]),
                {"role": "assistant", "content": "A cat."},
                user([{"type": "text", "text": "and this one?"}, {"type": "image_url", "image_url": {"url": PNG}}])]
    facts = describe_messages(messages)
    assert (facts.n_images, facts.text) == (2, "A cat.\nand this one?")


@pytest.mark.parametrize("role", ["assistant", "tool", "function"])
def test_content_may_be_missing_for_assistant_and_tool_turns(role):
    messages = [user("call the tool"), {"role": role, "content": None, "tool_calls": []}, user("thanks")]
    assert describe_messages(messages).text == "call the tool\nthanks"


@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool", "developer", "function"])
def test_all_roles(role):
    assert describe_messages([{"role": role, "content": "x"}]).text == "x"


# ---- describe_messages: bad shapes ------------------------------------------------------------------------

@pytest.mark.parametrize("messages, where", [
    ("hello", "messages must be a non-empty list"),
    (b"hello", "messages must be a non-empty list"),
    ({"role": "user", "content": "hi"}, "got dict"),
    (None, "got NoneType"),
    (42, "got int"),
    ([], "got list"),
    (["hello"], "messages[0] must be an object"),
    ([user("ok"), ["role", "user"]], "messages[1] must be an object"),
    ([{"content": "hi"}], "messages[0].role must be one of"),
    ([user("ok"), {"role": "robot", "content": "hi"}], "messages[1].role must be one of"),
    ([{"role": "User", "content": "hi"}], "got 'User'"),
    ([{"role": "user"}], "messages[0].content is missing"),
    ([{"role": "system", "content": None}], "messages[0].content is missing"),
    ([user(42)], "messages[0].content must be a string or a list of parts, got int"),
    ([user({"type": "text", "text": "hi"})], "messages[0].content must be a string or a list of parts, got dict"),
    ([user("ok"), user(["hi"])], "messages[1].content[0] must be an object with a 'type'"),
    ([user("ok"), user([{"text": "hi"}])], "messages[1].content[0].type must be one of"),
    ([user([{"type": "text", "text": "a"}, {"type": "audio", "data": "x"}])], "messages[0].content[1].type"),
    ([user([{"type": "image_url"}])], "messages[0].content[0].image_url.url must be a non-empty string"),
    ([user([{"type": "image_url", "image_url": {}}])], "messages[0].content[0].image_url.url"),
    ([user([{"type": "image_url", "image_url": {"url": ""}}])], "messages[0].content[0].image_url.url"),
    ([user([{"type": "image_url", "image_url": {"url": 7}}])], "messages[0].content[0].image_url.url"),
    ([user([{"type": "text", "text": 5}])], "messages[0].content[0].text must be a string, got int"),
    ([user([{"type": "text"}])], "messages[0].content[0].text must be a string, got NoneType"),
    ([user("bad \ud800 text")], "messages[0].content is not valid text (lone surrogate at 4)"),
    ([user("ok"), user([{"type": "text", "text": "x\udfff"}])], "messages[1].content[0].text is not valid text"),
])
def test_bad_shapes_name_the_place(messages, where):
    with pytest.raises(InvalidRequestError) as info:
        describe_messages(messages)
    assert where in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, CascadeError)


@pytest.mark.parametrize("messages", [
    [{"role": ["user"], "content": "hi"}],
    [user([{"type": ["text"], "text": "hi"}])],
    [user([{"type": {"kind": "text"}, "text": "hi"}])],
])
def test_unhashable_role_or_type_is_an_invalid_request(messages):
    with pytest.raises(InvalidRequestError):
        describe_messages(messages)


def test_too_much_text_is_refused(monkeypatch):
    import policies.request as request_module
    monkeypatch.setattr(request_module, "MAX_TEXT_CHARS", 10)
    with pytest.raises(InvalidRequestError, match="over the limit"):
        describe_messages([user("0123456789A")])


# ---- Request.modality -------------------------------------------------------------------------------------

@pytest.mark.parametrize("images, documents, modality", [(0, 0, "text"), (2, 0, "vision"), (0, 1, "document"),
                                                         (3, 1, "document")])
def test_modality(images, documents, modality):
    assert Request("x", 1, n_images=images, n_documents=documents).modality == modality


# ---- build_request ----------------------------------------------------------------------------------------

def test_build_request_counts_the_whole_conversation():
    request = build_request(CONVERSATION, {}, None)
    facts = describe_messages(CONVERSATION)
    assert request.text == facts.text
    assert request.prompt_tokens == count_text_tokens(facts.text) + TOKENS_PER_MESSAGE * len(CONVERSATION)
    last_turn_only = build_request(CONVERSATION[-1:], {}, None)
    assert request.prompt_tokens > last_turn_only.prompt_tokens
    assert (request.modality, request.max_tokens, request.user) == ("text", None, None)


def test_build_request_counts_images_and_documents():
    content = [{"type": "text", "text": "read these"}, {"type": "image_url", "image_url": {"url": PNG}},
               {"type": "image_url", "image_url": {"url": PNG}}, {"type": "file", "file": {"file_data": PDF}}]
    request = build_request([user(content)], {}, "alice")
    assert (request.n_images, request.n_documents, request.modality, request.user) == (2, 1, "document", "alice")
    assert request.prompt_tokens == (count_text_tokens("read these") + TOKENS_PER_MESSAGE + 2 * TOKENS_PER_IMAGE
                                     + 1 * TOKENS_PER_DOCUMENT_PAGE)        # a PDF without page objects: one page


def test_a_document_counts_1120_tokens_per_page():
    # DeepSeek-OCR-2's card: 256-1,120 visual tokens per page; the estimate is the worst case
    assert TOKENS_PER_DOCUMENT_PAGE == 1_120
    one = build_request([user([{"type": "file", "file": {"file_data": data_uri(pdf_bytes(1))}}])], {}, None)
    five = build_request([user([{"type": "file", "file": {"file_data": data_uri(pdf_bytes(5))}}])], {}, None)
    assert five.prompt_tokens - one.prompt_tokens == 4 * 1_120


@pytest.mark.parametrize("part, pages", [
    ({"type": "file", "file": {"filename": "a.pdf", "file_data": data_uri(pdf_bytes(3))}}, 3),
    ({"type": "input_file", "filename": "a.pdf", "file_data": data_uri(pdf_bytes(4, object_stream=True))}, 4),
    ({"type": "image_url", "image_url": {"url": data_uri(pdf_bytes(2))}}, 2),
    ({"type": "image_url", "image_url": data_uri(tiff_bytes(5), "image/tiff")}, 5),
    ({"type": "file", "file": {"file_data": data_uri(b"\x89PNG\r\n\x1a\n", "image/png")}}, 1),
    ({"type": "file", "file": {"file_id": "file-123"}}, 1),
    ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, 1),
])
def test_document_pages_are_counted_from_each_part_shape(part, pages):
    facts = describe_messages([user([{"type": "text", "text": "read"}, part])])
    assert (facts.n_documents, facts.document_pages) == (1, pages)


def test_document_pages_add_up_across_parts_and_turns():
    messages = [user([{"type": "file", "file": {"file_data": data_uri(pdf_bytes(3))}},
                      {"type": "image_url", "image_url": {"url": PNG}}]),
                {"role": "assistant", "content": "Read."},
                user([{"type": "file", "file": {"file_data": data_uri(pdf_bytes(2))}}])]
    facts = describe_messages(messages)
    assert (facts.n_images, facts.n_documents, facts.document_pages) == (1, 2, 5)
    request = build_request(messages, {}, None)
    assert request.prompt_tokens == (count_text_tokens(facts.text) + 3 * TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE
                                     + 5 * TOKENS_PER_DOCUMENT_PAGE)


class Answer(BaseModel):
    answer: str


@pytest.mark.parametrize("params, expected", [
    ({}, dict(max_tokens=None, needs_tools=False, json_output=None, stream=False)),
    ({"max_tokens": 256}, dict(max_tokens=256)),
    ({"max_completion_tokens": 300}, dict(max_tokens=300)),
    ({"max_tokens": 200, "max_completion_tokens": 300}, dict(max_tokens=200)),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, dict(needs_tools=True)),
    ({"tools": []}, dict(needs_tools=False)),
    ({"response_format": {"type": "json_object"}}, dict(json_output="json_object")),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
     dict(json_output="json_schema")),
    ({"response_format": Answer}, dict(json_output="json_schema")),       # litellm sends a pydantic class as a schema
    ({"response_format": {"type": "text"}}, dict(json_output=None)),
    ({"response_format": {"type": ["json_object"]}}, dict(json_output=None)),
    ({"response_format": "json_object"}, dict(json_output=None)),
    ({"stream": True}, dict(stream=True)),
    ({"temperature": 0.2, "seed": 1}, dict(max_tokens=None)),
])
def test_build_request_params(params, expected):
    request = build_request([user("hi")], params, None)
    for key, value in expected.items():
        assert getattr(request, key) == value, key


@pytest.mark.parametrize("params", [
    {"max_tokens": 0}, {"max_tokens": -5}, {"max_tokens": True}, {"max_tokens": False}, {"max_tokens": 1.5},
    {"max_tokens": "100"}, {"max_completion_tokens": 0}, {"max_completion_tokens": -1},
])
def test_build_request_rejects_bad_max_tokens(params):
    with pytest.raises(InvalidRequestError, match="max_tokens must be a positive integer"):
        build_request([user("hi")], params, None)


def test_explicit_none_max_tokens_falls_back_to_max_completion_tokens():
    assert build_request([user("hi")], {"max_tokens": None, "max_completion_tokens": 300}, None).max_tokens == 300


def test_build_request_rejects_a_non_string_user():
    with pytest.raises(InvalidRequestError, match="user must be a string"):
        build_request([user("hi")], {}, 42)  # type: ignore[arg-type]


def test_build_request_validates_messages_first():
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.content\[0\]\.type"):
        build_request([user([{"type": "video"}])], {"max_tokens": 10}, None)


# ---- route: the classifier scores the whole conversation --------------------------------------------------

class RecordingClassifier:
    def __init__(self, score: float) -> None:
        self.score, self.seen = score, []

    def score_one(self, text: str) -> float:
        self.seen.append(text)
        return self.score


@pytest.mark.parametrize("score, first", [(0.1, "deepseek-v2"), (0.9, "gpt-4o")])
def test_route_scores_the_whole_conversation(score, first):
    classifier = RecordingClassifier(score)
    routed = route(load_policy("default"), classifier, CONVERSATION, {"max_tokens": 100})
    assert classifier.seen == [describe_messages(CONVERSATION).text]
    assert "infinitely many primes" in classifier.seen[0] and "Continue the proof" in classifier.seen[0]
    assert routed.score == score and routed.plan.score == score
    assert routed.plan.attempts[0].model == first
    assert routed.plan.attempts[0].max_tokens == 100


def test_route_sends_images_to_the_vision_ladder():
    routed = route(load_policy("default"), RecordingClassifier(0.0),
                   [user([{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": PNG}}])], {})
    assert [a.model for a in routed.plan.attempts] == ["deepseek-vl2", "gpt-4o"]
