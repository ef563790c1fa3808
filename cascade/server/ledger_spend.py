"""Spend by model, user and UTC day for ``/dashboard/data.json``, without reading the whole ledger per poll.

:class:`SpendTally` keeps running figures — nano-dollars and entries per (model, user, day) — and on each
read adds only what the ledger gained since the last one:

    SQLite   aggregate SQL (``GROUP BY model, user, day``) over the entries past the last sequence number
             read, on a read connection of its own (:meth:`SQLiteBudgetStore.spend_groups`)
    Redis    the ledger stream past the last entry id read, at most ``max_entries`` per read
             (:meth:`RedisBudgetStore.ledger_page`); until it has caught up, ``ledger.complete`` is false
    others   the whole ledger each time (the memory store keeps only its recent entries anyway)

A ledger that shrank (a new SQLite file, a lost and restarted Redis ledger) is read again from its start;
so is one replaced between two reads by another that has grown past the old one (its entries would
otherwise be added to the old ones): a SQLite file whose entry at the last sequence number read is not the
same reservation any more (checked in the read's own transaction), a Redis ledger stream whose first entry
is no longer the one it had.
The figures are those of a full read of the ledger (:func:`entries_spend`), summed in exact nano-dollars.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterable

from policies.budget import from_nano, to_nano

__all__ = ["SpendTally", "entries_spend"]

MAX_ENTRIES_PER_READ = 100_000
_PAGE = 1000


class SpendTally:
    def __init__(self, store: Any, *, max_entries: int = MAX_ENTRIES_PER_READ) -> None:
        self.store, self.max_entries = store, max_entries
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._groups: dict[tuple[str, str | None, int], list[int]] = {}
        self._seq, self._stream_id, self._entries, self._complete = 0, "0-0", 0, True
        self._first_id = "0-0"              # the id of the stream's first entry when it was last read
        self._seq_id: str | None = None     # SQLite: the reservation id of the entry at sequence number _seq

    def read(self) -> dict[str, Any]:
        """The spend figures (the dashboard's ``spend``), brought up to date first."""
        with self._lock:
            if hasattr(self.store, "spend_groups"):
                self._advance_sql()
            elif hasattr(self.store, "ledger_page"):
                self._advance_stream()
            else:
                self._reset()
                self._add_entries(self.store.ledger())
            return _document(self._groups, self._entries, self._complete)

    def _advance_sql(self) -> None:
        got = self.store.spend_groups(self._seq, after_id=self._seq_id)
        if got.restarted:                          # another ledger (a new, shorter or replaced file): start over
            self._reset()
        for model, user, day, nano, count in got.rows:
            self._add(model, user, int(day), int(nano), int(count))
        self._seq, self._seq_id = got.last, got.last_id

    def _advance_stream(self) -> None:
        length = self.store.ledger_length()
        _, first = self.store.ledger_page("0-0", 1)
        if length < self._entries or first != self._first_id:     # the stream was lost and begun again
            self._reset()
            self._first_id = first
        read = 0
        while read < self.max_entries:
            entries, self._stream_id = self.store.ledger_page(self._stream_id, min(_PAGE, self.max_entries - read))
            self._add_entries(entries)
            read += len(entries)
            if len(entries) < _PAGE:
                break
        self._complete = self._entries >= length

    def _add_entries(self, entries: Iterable[Any]) -> None:
        for e in entries:
            self._add(e.model, e.user, int(e.at) // 86400, to_nano(e.cost_usd), 1)

    def _add(self, model: str, user: str | None, day: int, nano: int, count: int) -> None:
        row = self._groups.setdefault((model, user, day), [0, 0])
        row[0] += nano
        row[1] += count
        self._entries += count


def entries_spend(entries: Iterable[Any]) -> dict[str, Any]:
    """The same figures from a full read of ledger entries (what every poll did before the tally)."""
    tally = SpendTally(None)
    tally._add_entries(entries)
    return _document(tally._groups, tally._entries, True)


def _document(groups: dict[tuple[str, str | None, int], list[int]], entries: int, complete: bool) -> dict[str, Any]:
    by_model: dict[str, list[int]] = {}
    by_user: dict[str, int] = {}
    by_day: dict[int, int] = {}
    for (model, user, day), (nano, count) in groups.items():
        row = by_model.setdefault(model, [0, 0])
        row[0] += nano
        row[1] += count
        name = user if user is not None else "(no user)"
        by_user[name] = by_user.get(name, 0) + nano
        by_day[day] = by_day.get(day, 0) + nano
    return {"total_usd": from_nano(sum(by_day.values())),
            "by_model": [{"model": m, "usd": from_nano(v[0]), "calls": v[1]} for m, v in sorted(by_model.items())],
            "by_user": [{"user": u, "usd": from_nano(v)} for u, v in sorted(by_user.items())],
            "by_day": [{"day": time.strftime("%Y-%m-%d", time.gmtime(d * 86400)), "usd": from_nano(v)}
                       for d, v in sorted(by_day.items())],
            "ledger": {"entries": entries, "complete": complete}}
