"""``POST /v1/feedback``: a user labels the answer of one of their own requests.

    POST /v1/feedback   {"request_id": "<x-cascade-trace's request_id>", "score": 0..1}
    200 {"object": "feedback", "request_id", "score"}
    400 a bad body · 401 no / wrong key · 404 no such request of this key's user (another user's
    request is answered exactly like an unknown one)

Scoped like ``/v1/chat/completions``: the API key's user when the app has keys, else the body's
``user``. The line is stored beside the trace (:mod:`cascade.feedback`).
"""
from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from policies.budget import user_of
from policies.errors import FeedbackRejected

from cascade.server.body import parse_json, read_body
from cascade.server.errors import ApiError, error_reply

_JSON = "application/json"
REQUEST_SCHEMA = {"type": "object", "required": ["request_id", "score"], "properties": {
    "request_id": {"type": "string", "minLength": 1,
                   "description": "The request_id of one of your requests (the x-cascade-trace header's)"},
    "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "0 inadequate .. 1 adequate"},
    "user": {"type": "string", "description": "Whose request it is, when the server has no API keys"}}}
REPLY_SCHEMA = {"type": "object", "required": ["object", "request_id", "score"], "properties": {
    "object": {"const": "feedback"}, "request_id": {"type": "string"}, "score": {"type": "number"}}}


def feedback_operation(security: list[dict[str, list[str]]], error_ref: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI operation of ``POST /v1/feedback`` (:mod:`cascade.server.openapi`)."""
    def reply(text: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": text, "content": {_JSON: {"schema": schema}}}
    errors = {"400": "Invalid body (names the field)", "401": "Missing or wrong API key",
              "404": "No such request of this key's user", "413": "Request body too large"}
    return {"operationId": "createFeedback", "security": security,
            "requestBody": {"required": True, "content": {_JSON: {
                "schema": {"$ref": "#/components/schemas/FeedbackRequest"}}}},
            "responses": {"200": reply("The label, stored beside the trace", REPLY_SCHEMA),
                          **{code: reply(text, error_ref) for code, text in errors.items()
                             if code != "401" or security}}}


def feedback_route(state: Any) -> Any:
    async def feedback(request: Request) -> Response:
        try:
            user = user_of(state.authenticate(request))      # the key's user name (traces record names)
            data = parse_json(await read_body(request, state.max_body_bytes))
            request_id, score = _fields(data)
            if state.keys is None:
                user = data.get("user") if isinstance(data.get("user"), str) else None
            try:
                await asyncio.to_thread(state.router.feedback, request_id, score, user=user)
            except FeedbackRejected as exc:
                raise ApiError(404, str(exc), param="request_id", code="request_not_found",
                               outcome="not_found") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes an OpenAI-style error body
            reply = error_reply(exc)
            return Response(reply.content(), status_code=reply.status, headers=reply.headers, media_type=_JSON)
        body = {"object": "feedback", "request_id": request_id, "score": float(score)}
        return Response(json.dumps(body), media_type=_JSON)
    return feedback


def _fields(data: Any) -> tuple[str, float]:
    request_id, score = data.get("request_id"), data.get("score")
    if not isinstance(request_id, str) or not request_id:
        raise ApiError(400, "request_id must be the request_id of one of your requests", param="request_id",
                       code="invalid_value")
    ok = isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
    if isinstance(score, bool) or not ok or not 0.0 <= score <= 1.0:
        raise ApiError(400, "score must be a number from 0 (inadequate) to 1 (adequate)", param="score",
                       code="invalid_value")
    return request_id, float(score)
