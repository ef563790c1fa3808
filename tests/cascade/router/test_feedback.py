"""router.feedback: a label beside the trace, scoped to the request's user."""
from __future__ import annotations

import pytest

from cascade.errors import FeedbackRejected
from cascade.trace import read_trace_records
from tests.harness.fake_provider import answer

from .conftest import user_msg


async def test_feedback_is_stored_beside_the_trace(make_router, fake_provider):
    fake_provider.script("deepseek-chat", answer("42"))
    router = make_router(score=0.1)
    resp = await router.acomplete(user_msg("Calculate 6 times 7."), user="alice")
    rid = resp.cascade.request_id
    line = router.feedback(rid, 0.25, user="alice")
    assert line["score"] == 0.25 and line["user"] == "alice"
    assert router.feedback(rid, True)["score"] == 1.0                     # the app itself: unscoped
    with pytest.raises(FeedbackRejected, match="no request"):
        router.feedback(rid, 1.0, user="mallory")
    with pytest.raises(FeedbackRejected, match="no request"):
        router.feedback(rid, 1.0, user=None)
    with pytest.raises(FeedbackRejected, match="no request"):
        router.feedback("unknown", 1.0)
    with pytest.raises(FeedbackRejected, match="from 0"):
        router.feedback(rid, 1.5)
    lines = [d for d in read_trace_records(router.sink.path) if d.get("kind") == "feedback"]
    assert [(d["request_id"], d["score"]) for d in lines] == [(rid, 0.25), (rid, 1.0)]


async def test_a_new_router_finds_the_owner_in_the_trace_file(make_router, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("42"))
    first = make_router(score=0.1)
    rid = (await first.acomplete(user_msg("Calculate 6 times 7."), user="alice")).cascade.request_id
    later = make_router(score=0.1)                    # same trace file, no memory of the request
    assert later.feedback(rid, 0.0, user="alice")["user"] == "alice"
    with pytest.raises(FeedbackRejected):
        later.feedback(rid, 0.0, user="bob")
