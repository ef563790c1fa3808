"""The OpenAPI 3.1 document of the served routes (``GET /openapi.json``).

Built once per app on its first request and kept as bytes: the hot route never touches it. The
request body is the pydantic schema of :class:`cascade.server.schemas.ChatCompletionRequest`, with
``messages`` described as the Router validates them (``policies.request.describe_messages``): roles,
content as text or parts (text, image_url, file), content optional only for assistant / tool /
function messages. ``model`` lists what this app serves; bearer auth is declared when it has keys.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from cascade.server.feedback import REQUEST_SCHEMA as FEEDBACK_REQUEST, feedback_operation
from cascade.server.schemas import ChatCompletionRequest

__all__ = ["openapi_document"]

_JSON = "application/json"
_TEXT = {"type": "string", "minLength": 0}
_TEXT_PART = {"type": "object", "required": ["type", "text"],
              "properties": {"type": {"enum": ["text", "input_text"]}, "text": _TEXT}}
_IMAGE_REF = {"anyOf": [{"type": "string", "minLength": 1},
                        {"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "minLength": 1}}}]}
_IMAGE_PART = {"type": "object", "required": ["type", "image_url"],
               "properties": {"type": {"const": "image_url"}, "image_url": _IMAGE_REF}}
_INPUT_IMAGE_PART = {"type": "object", "required": ["type", "image_url"],
                     "properties": {"type": {"const": "input_image"}, "image_url": _IMAGE_REF}}
_FILE_REF = {"type": "object", "anyOf": [{"required": ["file_id"]}, {"required": ["file_data"]}],
             "properties": {"file_id": {"type": "string"}, "file_data": {"type": "string"}}}
_FILE_PART = {"type": "object", "required": ["type", "file"], "properties": {"type": {"const": "file"}, "file": _FILE_REF}}
_INPUT_FILE_PART = {"type": "object", "required": ["type"], "properties": {"type": {"const": "input_file"}}}
_PARTS = {"type": "array", "items": {"anyOf": [_TEXT_PART, _IMAGE_PART, _INPUT_IMAGE_PART, _FILE_PART,
                                               _INPUT_FILE_PART]}}
_CONTENT = {"anyOf": [_TEXT, _PARTS]}
MESSAGE = {"anyOf": [
    {"type": "object", "required": ["role", "content"],
     "properties": {"role": {"enum": ["system", "developer", "user"]}, "content": _CONTENT}},
    {"type": "object", "required": ["role"],
     "properties": {"role": {"enum": ["assistant", "tool", "function"]},
                    "content": {"anyOf": [_TEXT, _PARTS, {"type": "null"}]}}},
]}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
COMPLETION = {"type": "object", "required": ["id", "object", "model", "choices", "cascade"],
              "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion"},
                             "model": {"type": "string"}, "choices": {"type": "array"},
                             "cascade": {"type": "object"}}}
# One server-sent event: ``data`` is a chat.completion.chunk (or an error object) as JSON, or [DONE].
SSE_EVENT = {"type": "object", "required": ["data"],
             "properties": {"data": {"type": "string"}, "event": {"type": "string"}}}
MODELS = {"type": "object", "required": ["object", "data"],
          "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": {
              "type": "object", "required": ["id", "object"],
              "properties": {"id": {"type": "string"}, "object": {"const": "model"}}}}}}
_CHAT_ERRORS = {"400": "Invalid request (names the parameter)", "401": "Missing or wrong API key",
                "404": "Unknown model", "413": "Request body or prompt too large",
                "429": "A budget cap refused the request (Retry-After)", "502": "Every provider attempt failed",
                "503": "The budget store is unavailable"}


def openapi_document(model_ids: Sequence[str], *, with_keys: bool, version: str) -> bytes:
    """The document's JSON bytes for an app serving ``model_ids``."""
    security = [{"bearer": []}] if with_keys else []
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "deepseek-cascade", "version": version,
                 "description": "OpenAI-compatible chat completions routed cheap-first with checks and budgets."},
        "paths": {
            "/v1/chat/completions": {"post": _chat_operation(security)},
            "/v1/feedback": {"post": feedback_operation(security, {"$ref": "#/components/schemas/Error"})},
            "/v1/models": {"get": {"operationId": "listModels", "security": security, "responses": {
                "200": _json_response("The models this server serves", MODELS),
                **({"401": _json_response("Missing or wrong API key", ERROR)} if with_keys else {})}}},
            "/healthz": {"get": {"operationId": "health", "security": [], "responses": {
                "200": _json_response("Serving; the budget store is reachable", {"type": "object"}),
                "503": _json_response("The budget store is unreachable", {"type": "object"})}}},
            "/metrics": {"get": {"operationId": "metrics", "security": [], "responses": {"200": {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": {**_request_schemas(model_ids), "FeedbackRequest": FEEDBACK_REQUEST,
                                   "Error": ERROR}},
    }
    if with_keys:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return json.dumps(doc).encode("utf-8")


def _request_schemas(model_ids: Sequence[str]) -> dict[str, Any]:
    """The request's schema and the ones it refers to, all under ``components/schemas``."""
    schema = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = schema.pop("$defs", {})
    props = schema["properties"]
    props["model"] = {"enum": list(model_ids), "type": "string"}
    props["messages"] = {"type": "array", "minItems": 1, "items": MESSAGE}
    return {"ChatCompletionRequest": schema, **nested}


def _chat_operation(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    errors = {code: _json_response(text, {"$ref": "#/components/schemas/Error"}) for code, text in _CHAT_ERRORS.items()
              if code != "401" or security}
    ok = {"description": "The answer (JSON), or server-sent events when stream is true",
          "content": {_JSON: {"schema": COMPLETION}, "text/event-stream": {"schema": SSE_EVENT}}}
    return {"operationId": "createChatCompletion", "security": security,
            "requestBody": {"required": True, "content": {_JSON: {
                "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}}},
            "responses": {"200": ok, **errors}}


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}
