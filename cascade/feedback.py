"""User feedback: ``router.feedback(request_id, score, user=...)`` labels a request's answer, stored
beside its trace as a ``kind: feedback`` line (``POST /v1/feedback`` in ``cascade serve`` calls it with
the API key's user). A request is labelled only by its own user: the owner is known from the
router's recent requests, else from the request's line in the trace file.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

from policies.errors import FeedbackRejected

_UNKNOWN = object()
UNSCOPED = object()         # feedback(user=UNSCOPED): the caller (an app, not one of its users) may label any request
RECENT = 100_000            # request owners kept in memory (older ones are looked up in the trace file)


class FeedbackBook:
    def __init__(self, router: Any, capacity: int = RECENT) -> None:
        self.router = router
        self.capacity = capacity
        self._owners: "OrderedDict[str, str | None]" = OrderedDict()

    def owned(self, request_id: str, user: str | None) -> None:
        """Remember who made ``request_id`` (every finished request)."""
        self._owners[request_id] = user
        if len(self._owners) > self.capacity:
            self._owners.popitem(last=False)

    def owner(self, request_id: str) -> Any:
        """The user of ``request_id`` (None: made without one), or ``_UNKNOWN``."""
        if request_id in self._owners:
            return self._owners[request_id]
        sink = self.router.sink
        if sink is None or not sink.path.is_file():
            return _UNKNOWN
        with open(sink.path, encoding="utf-8") as fh:
            for line in fh:
                if request_id in line:
                    doc = json.loads(line)
                    if doc.get("request_id") == request_id and "kind" not in doc:
                        return doc.get("user")
        return _UNKNOWN

    def record(self, request_id: str, score: Any, *, user: Any = UNSCOPED) -> dict[str, Any]:
        """Store ``score`` (0 = the answer was inadequate ... 1 = adequate) for ``request_id``. With
        ``user`` (None included: a request made without one) the request must be that user's; an
        unknown request and another user's are refused alike. Returns the feedback line."""
        value = _score(score)
        if not isinstance(request_id, str) or not request_id:
            raise FeedbackRejected("feedback needs the request_id of a request (resp.cascade.request_id)")
        owner = self.owner(request_id)
        if owner is _UNKNOWN or (user is not UNSCOPED and owner != user):
            whose = "" if user is UNSCOPED else f" of user {user!r}"
            raise FeedbackRejected(f"no request {request_id!r}{whose} in this router's traces")
        sink = self.router.sink
        if sink is None:
            raise FeedbackRejected("feedback is stored beside the trace: build the Router with trace_path=...")
        doc = {"kind": "feedback", "request_id": request_id, "user": owner, "score": value, "ts": self.router._wall()}
        sink.write_record(dict(doc))
        return doc


def _score(score: Any) -> float:
    if isinstance(score, bool):
        return float(score)
    if isinstance(score, (int, float)) and math.isfinite(score) and 0.0 <= score <= 1.0:
        return float(score)
    raise FeedbackRejected(f"feedback score must be a number from 0 (inadequate) to 1 (adequate), got {score!r}")
