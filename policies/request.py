"""What the engine needs to know about a request, extracted from OpenAI-style messages (pure).

``describe_messages`` validates the message shapes and raises ``InvalidRequestError`` naming the exact
place (``messages[2].content[0].type``) of the first problem; it counts the pages of attached documents
(``policies.documents``). ``json_output`` reads which JSON output ``response_format`` asks for.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from policies.documents import document_pages
from policies.errors import InvalidRequestError

ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
TEXT_PARTS = frozenset({"text", "input_text"})
IMAGE_PARTS = frozenset({"image_url", "input_image"})
FILE_PARTS = frozenset({"file", "input_file"})
DOCUMENT_MIME = ("application/pdf", "image/tiff")
MAX_TEXT_CHARS = 20_000_000
# What a response_format asks for: a JSON object (JSON mode) or JSON that follows a schema (structured
# outputs). Catalog models declare each as its own capability (policies.schema.JSON_OUTPUT_CAPABILITY).
JsonOutput = Literal["json_object", "json_schema"]


@dataclass(frozen=True)
class MessageFacts:
    text: str            # the whole conversation's text, in order (what the classifier scores)
    n_images: int
    n_documents: int
    document_pages: int = 0     # pages of all documents together (policies.documents: errs high, >= 1 each)


@dataclass(frozen=True)
class Request:
    """The engine's view of one request. ``prompt_tokens`` counts the whole conversation."""

    text: str
    prompt_tokens: int
    max_tokens: int | None = None
    n_images: int = 0
    n_documents: int = 0
    needs_tools: bool = False
    json_output: JsonOutput | None = None       # the JSON output response_format asks for, if any
    stream: bool = False
    user: str | None = None

    @property
    def modality(self) -> str:
        if self.n_documents:
            return "document"
        return "vision" if self.n_images else "text"


def describe_messages(messages: Any) -> MessageFacts:
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise InvalidRequestError("messages must be a non-empty list of {role, content} objects, "
                                  f"got {type(messages).__name__}")
    texts: list[str] = []
    images = documents = pages = 0
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object with 'role' and 'content', got {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequestError(f"{where}.role must be one of {sorted(ROLES)}, got {role!r}")
        for key, value in message.items():
            if key != "content" and key != "role":  # the role is a name from ROLES (checked above)
                _check_json(value, f"{where}.{key}")
        t, im, doc, pg = _describe_content(message.get("content"), f"{where}.content", role)
        texts.extend(t)
        images += im
        documents += doc
        pages += pg
    text = "\n".join(texts)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidRequestError(f"messages hold {len(text):,} characters of text, over the limit of {MAX_TEXT_CHARS:,}")
    return MessageFacts(text=text, n_images=images, n_documents=documents, document_pages=pages)


def _describe_content(content: Any, where: str, role: str) -> tuple[list[str], int, int, int]:
    """The texts, images, documents and document pages of one message's content."""
    if content is None:
        if role in ("assistant", "tool", "function"):
            return [], 0, 0, 0
        raise InvalidRequestError(f"{where} is missing (a {role} message needs content)")
    if isinstance(content, str):
        _check_text(content, where)
        return [content], 0, 0, 0
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where} must be a string or a list of parts, got {type(content).__name__}")
    texts: list[str] = []
    images = documents = pages = 0
    for j, part in enumerate(content):
        kind = _part_kind(part, f"{where}[{j}]")
        if kind == "text":
            texts.append(part["text"])
        elif kind == "text_file":
            texts.append(_text_of_file(_document_payload(part) or ""))
        elif kind == "image":
            images += 1
        else:
            documents += 1
            pages += document_pages(_document_payload(part))
    return texts, images, documents, pages


def _part_kind(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise InvalidRequestError(f"{where} must be an object with a 'type', got {type(part).__name__}")
    ptype = part.get("type")
    if not isinstance(ptype, str):
        raise InvalidRequestError(f"{where}.type must be one of text, image_url, file; got {ptype!r}")
    if ptype in TEXT_PARTS:
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{where}.text must be a string, got {type(text).__name__}")
        _check_text(text, f"{where}.text")
        return "text"
    if ptype in IMAGE_PARTS:
        url = _image_url(part, where)
        return "document" if url.startswith(tuple(f"data:{m}" for m in DOCUMENT_MIME)) else "image"
    if ptype == "file" and not _is_file_ref(part.get("file")):
        raise InvalidRequestError(f"{where}.file must be an object with a string file_id or file_data")
    if ptype in FILE_PARTS:
        payload = _document_payload(part)
        return "text_file" if isinstance(payload, str) and payload.startswith(TEXT_FILE_MIME) else "document"
    raise InvalidRequestError(f"{where}.type must be one of text, image_url, file; got {ptype!r}")


def _is_file_ref(file: Any) -> bool:
    given = [file[k] for k in ("file_id", "file_data") if k in file] if isinstance(file, dict) else []
    return bool(given) and all(isinstance(v, str) for v in given)


TEXT_FILE_MIME = ("data:text/", "data:application/json", "data:application/xml", "data:application/x-yaml")


def _text_of_file(data_uri: str) -> str:
    """The text a ``data:text/...;base64,`` file part carries (it is text to read, not a scan to OCR)."""
    import base64
    import binascii
    head, _, body = data_uri.partition(",")
    try:
        raw = base64.b64decode(body, validate=False) if head.endswith(";base64") else body.encode()
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace")


def _document_payload(part: dict) -> str | None:
    """A document part's data URI (or base64) when the request carries it: ``image_url.url``,
    ``file.file_data`` (chat completions) or ``file_data`` (``input_file``); None for a file id or URL."""
    if part.get("type") in IMAGE_PARTS:
        ref = part.get("image_url")
        return ref.get("url") if isinstance(ref, dict) else ref
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else part.get("file_data")
    return data if isinstance(data, str) else None


def json_output(response_format: Any) -> JsonOutput | None:
    """Which JSON output a ``response_format`` asks for: ``{"type": "json_object"}``, ``{"type":
    "json_schema", ...}``, or a pydantic model class (which litellm sends as a json_schema)."""
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        return kind if kind in ("json_object", "json_schema") else None
    if isinstance(response_format, type) and callable(getattr(response_format, "model_json_schema", None)):
        return "json_schema"
    return None


def _image_url(part: dict, where: str) -> str:
    ref = part.get("image_url")
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"{where}.image_url.url must be a non-empty string (an https URL or a data URI)")
    return url


_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """Fields other than content go to the provider as JSON: refuse what cannot be sent."""
    if depth > 32:
        raise InvalidRequestError(f"{where} nests deeper than 32 levels")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidRequestError(f"{where} has a non-string key {k!r}")
            _check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)
    elif not isinstance(value, _JSON_SCALARS):
        raise InvalidRequestError(f"{where} must be JSON (string, number, bool, null, list or object), "
                                  f"got {type(value).__name__}")


def _check_text(text: str, where: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequestError(f"{where} is not valid text (lone surrogate at {exc.start})") from None
