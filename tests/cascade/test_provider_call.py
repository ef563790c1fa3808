"""``cascade.provider_call.late_grace``: how long past its timeout an abandoned provider call may still
finish and be recorded. One public function, used by the chat calls and the semantic cache's paid
embedding calls alike."""
from __future__ import annotations

import pytest

import cascade.cache.paid_embedding as paid_embedding
import cascade.executor as executor
import cascade.provider_call as provider_call
from cascade.provider_call import late_grace


@pytest.mark.parametrize("timeout, grace", [(0.001, 1.0), (0.2, 1.0), (1.0, 1.0), (7.5, 7.5), (30.0, 30.0),
                                            (30.001, 30.0), (600.0, 30.0)])
def test_late_grace_is_the_timeout_between_one_and_thirty_seconds(timeout, grace):
    assert late_grace(timeout) == grace


def test_chat_calls_and_embedding_calls_use_the_one_documented_late_grace():
    assert late_grace.__doc__ and "timeout" in late_grace.__doc__
    assert executor.late_grace is provider_call.late_grace
    assert paid_embedding.late_grace is provider_call.late_grace
    assert not hasattr(provider_call, "_late_grace")
