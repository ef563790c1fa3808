"""Row-wise feature extraction, in this process or mapped over partitions of the rows (``cascade train
--engine dask``).

The feature functions of training (:func:`classifiers.features.sparse_matrix`, ``struct_matrix``,
:func:`classifiers.checker.extra_columns`, :func:`classifiers.signals.signal_matrix`, a checker's
``score``) compute each row from that row's inputs alone, so the function over consecutive partitions,
stacked in order, is the function over every row: the fit that follows sees the same matrices, bit for
bit (tests train both ways and compare the artifacts). A partition holds two rows at least: a function
given one text takes its single-text path, whose numbers may differ in the last bit. Only the extraction is spread; the fit stays in
the calling process.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

#: ``map(fn, items, **kwargs) -> [fn(item, **kwargs) for item in items]``, on some engine
Mapper = Callable[..., list]


def apply_to(columns: tuple[Sequence[Any], ...], function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``function(*columns, **kwargs)``: the task a worker runs on one partition."""
    return function(*columns, **kwargs)


def stack(results: list[Any]) -> Any:
    """Partition results in order as one: rows of matrices (numpy or scipy sparse), or 1-D arrays."""
    first = results[0]
    if hasattr(first, "tocsr"):
        from scipy import sparse
        return sparse.vstack(results, format="csr")
    return np.concatenate(results, axis=0)


@dataclass(frozen=True)
class RowMap:
    """Runs a row-wise feature function over all rows: at once in this process (no ``mapper``), or cut
    into ``parts`` consecutive partitions mapped with ``mapper`` and stacked in order."""

    mapper: Mapper | None = None
    parts: int = 1

    def __call__(self, fn: Callable[..., Any], *columns: Sequence[Any], **kwargs: Any) -> Any:
        n = len(columns[0])
        parts = min(self.parts, n // 2)   # two rows at least: one text alone takes the single-text path
        if self.mapper is None or parts <= 1:
            return fn(*columns, **kwargs)
        bounds = np.linspace(0, n, parts + 1).round().astype(int).tolist()
        items = [tuple(list(col[a:b]) for col in columns) for a, b in zip(bounds[:-1], bounds[1:])]
        return stack(self.mapper(apply_to, items, function=fn, kwargs=kwargs))


#: every row at once, in this process
LOCAL = RowMap()
