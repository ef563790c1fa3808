"""Where ``cascade train`` extracts its features: ``local`` (this process, every row at once), ``dask`` or
``ray`` (the rows cut into partitions mapped over the cluster's workers by the replay's own engine,
:func:`cascade.replay.parts.mapper`; the fit stays in this process, on the merged features)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

#: partitions per worker: a worker that finishes early takes the next one
PARTS_PER_WORKER = 2


@contextmanager
def feature_map(engine: str = "local", address: str | None = None, workers: int = 2) -> Iterator[Any]:
    """The :class:`classifiers.training.rowmap.RowMap` of ``engine`` (``local``, ``dask`` or ``ray``: the cluster
    at ``address``, else a local one of ``workers`` processes), open for the ``with`` block. Training
    modules are imported here only (the runtime never imports them)."""
    from classifiers.training.rowmap import LOCAL, RowMap

    from cascade.replay.parts import mapper
    with mapper(engine, address, workers) as run:
        yield LOCAL if engine == "local" else RowMap(run, parts=max(1, workers) * PARTS_PER_WORKER)
