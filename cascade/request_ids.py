"""Request ids: a fresh random id per request, or, for a Router built with ``seed=``, ids drawn from
the seed in request order, so that two runs of the same traffic in the same order name their requests
alike — and so sample alike whatever is drawn from an id (the shadow sample,
:func:`policies.learning.sampled`), which makes a seeded benchmark reproducible.

    RequestIds()          uuid4().hex per call: unique across processes and runs (the default)
    RequestIds(seed=7)    blake2b-128 of (seed, n) for the n-th request: 32 hex digits like uuid4().hex,
                          unique within the run, different for every other seed

Routers built with the same seed give the same ids: do not give one seed to two Routers that write to
one ledger or trace file (the test suite's worker processes each take a seed of their own).
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import uuid

__all__ = ["RequestIds"]

_PERSON = b"cascade-req-id"       # blake2b personalisation: these hashes are request ids, nothing else


class RequestIds:
    """Makes the request ids of one Router: ``ids()`` is the next one."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._count = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        if self.seed is None:
            return uuid.uuid4().hex
        with self._lock:
            n = next(self._count)
        return hashlib.blake2b(f"{self.seed}:{n}".encode(), digest_size=16, person=_PERSON).hexdigest()
