"""The settlement spool: spend the budget store could not take, kept on local disk until it can.

A paid call's cost is settled in the store (``commit``). When the store cannot be reached at that
moment, the settlement is appended here instead — one JSON line, written and fsynced before the
request goes on — and applied later: as soon as the store takes a write again, every few seconds while
it does not, and when a process starts. Applying is ``store.commit(<the attempt's reservation>, cost)``,
and every store's commit is idempotent by reservation id (the attempt id), so a settlement applied
twice — a crash between applying it and marking it applied, or two processes applying together — is
in the ledger once.

The file (append-only JSON lines; every write holds ``flock(LOCK_EX)``, so the processes of one host
share it)::

    {"op": "settle", "id": <attempt id>, "request_id", "user", "model", "cost_nano", "at",
     "buckets": [[<bucket key>, <ends_at or null>], ...]}
    {"op": "applied", "id": <attempt id>}

Once every settlement has its ``applied`` line the file is emptied. A line cut short by a crash is
skipped (the next write starts on a new line). Where the spool lives: ``spool_path(store)``, in
``$CASCADE_SPOOL_DIR`` (default ``~/.cascade/spool``), one file per store.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from policies.budget import from_nano
from policies.errors import BudgetStoreUnavailable, CascadeError

from cascade.budget.base import Reservation

__all__ = ["Settlement", "SettlementSpool", "default_spool_dir", "open_spool", "spool_path"]

log = logging.getLogger("cascade.budget")
SPOOL_DIR_ENV = "CASCADE_SPOOL_DIR"


@dataclass(frozen=True)
class Settlement:
    """One paid attempt's cost, as the store should record it."""

    id: str                      # the attempt's reservation id: what makes applying idempotent
    request_id: str
    user: str | None
    model: str
    cost_nano: int
    at: float                    # when the money was spent (the ledger entry's time)
    buckets: tuple[tuple[str, float | None], ...]

    @classmethod
    def of(cls, reservation: Reservation, cost_nano: int, at: float) -> "Settlement":
        return cls(reservation.id, reservation.request_id, reservation.user, reservation.model, cost_nano, at,
                   tuple((str(b), e) for b, e in reservation.buckets))

    def reservation(self) -> Reservation:
        return Reservation(id=self.id, request_id=self.request_id, user=self.user, model=self.model,
                           amount_usd=0.0, expires_at=self.at, buckets=self.buckets)

    def to_json(self) -> dict[str, Any]:
        return {"op": "settle", "id": self.id, "request_id": self.request_id, "user": self.user,
                "model": self.model, "cost_nano": self.cost_nano, "at": self.at,
                "buckets": [list(b) for b in self.buckets]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Settlement":
        cost = doc["cost_nano"]
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 0:
            raise ValueError(f"cost_nano must be a non-negative integer, got {cost!r}")
        buckets = tuple((str(b), None if e is None else float(e)) for b, e in doc["buckets"])
        return cls(str(doc["id"]), str(doc["request_id"]), doc["user"], str(doc["model"]), cost,
                   float(doc["at"]), buckets)


def default_spool_dir() -> Path:
    return Path(os.environ.get(SPOOL_DIR_ENV) or "~/.cascade/spool").expanduser()


def spool_path(store: Any, directory: str | os.PathLike[str] | None = None) -> Path | None:
    """The spool file of ``store`` (one per store URL and key prefix); None for ``memory://``, whose
    ledger lives and dies with its process."""
    url = str(getattr(store, "url", ""))
    if not url or url.startswith("memory://"):
        return None
    key = f"{url}|{getattr(store, 'prefix', '')}"
    scheme = url.partition("://")[0] or "store"
    name = f"{scheme}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsonl"
    return Path(directory).expanduser() / name if directory is not None else default_spool_dir() / name


def open_spool(store: Any, directory: str | os.PathLike[str] | None = None) -> "SettlementSpool | None":
    """The spool of ``store`` in ``directory`` (default: :func:`default_spool_dir`); a store that
    remembers its ledger generation on disk (Redis) keeps that marker beside it."""
    path = spool_path(store, directory)
    if path is None:
        return None
    if directory is not None and getattr(store, "marker", None) is not None:
        from cascade.budget.generation import GenerationMarker
        store.marker = GenerationMarker(path.with_suffix(".generation"))
    return SettlementSpool(path)


class SettlementSpool:
    """Append-only, fsynced file of settlements awaiting the store (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # ---- writing -----------------------------------------------------------------------------------
    def append(self, settlement: Settlement) -> None:
        """Write ``settlement`` durably (returns once it is on disk); OSError if it cannot be."""
        self._write([settlement.to_json()])

    def has_pending(self) -> bool:
        """Cheap check (one stat): may anything await the store?"""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def pending(self) -> list[Settlement]:
        """Settlements not yet applied, in the order they were spooled."""
        settled, applied = self._read()
        return [s for sid, s in settled.items() if sid not in applied]

    def apply(self, store: Any) -> tuple[int, BudgetStoreUnavailable | None]:
        """Commit every pending settlement to ``store``: (how many were applied, the store's error if it
        stopped taking them). A settlement the store rejects for another reason stays pending (logged)."""
        done: list[str] = []
        error: BudgetStoreUnavailable | None = None
        for s in self.pending():
            try:
                store.commit(s.reservation(), from_nano(s.cost_nano), now=s.at)
            except BudgetStoreUnavailable as exc:
                error = exc
                break
            except CascadeError as exc:
                log.error("spooled settlement %s (request %s, $%.9f) rejected by the store: %s",
                          s.id, s.request_id, from_nano(s.cost_nano), exc)
                continue
            done.append(s.id)
        if done:
            self._mark_applied(done)
            log.warning("applied %d spooled settlement(s) from %s to the budget store", len(done), self.path)
        return len(done), error

    def summary(self) -> dict[str, Any]:
        """What ``cascade budget`` shows: path, pending count and USD, the oldest pending time."""
        pending = self.pending() if self.path.exists() else []
        return {"path": str(self.path), "pending": len(pending),
                "pending_usd": from_nano(sum(s.cost_nano for s in pending)),
                "oldest_at": min((s.at for s in pending), default=None)}

    # ---- file internals -----------------------------------------------------------------------------
    def _write(self, docs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(d, ensure_ascii=True, separators=(",", ":")) + "\n" for d in docs).encode()
        with self._locked(create=True) as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data            # a line cut short by a crash stays alone on its line
            _write_all(fd, data)
            os.fsync(fd)

    def _mark_applied(self, ids: list[str]) -> None:
        with self._locked(create=True) as fd:
            _write_all(fd, "".join(json.dumps({"op": "applied", "id": i}) + "\n" for i in ids).encode())
            os.fsync(fd)
            settled, applied = _parse(_read_all(fd))
            if settled.keys() <= applied:          # nothing left: start the file over
                os.ftruncate(fd, 0)
                os.fsync(fd)

    def _read(self) -> tuple[dict[str, Settlement], set[str]]:
        try:
            with self._locked(create=False) as fd:
                return _parse(_read_all(fd))
        except FileNotFoundError:
            return {}, set()

    def _locked(self, *, create: bool) -> "_Locked":
        return _Locked(self.path, create)


class _Locked:
    """The spool file opened for read/append and held under an exclusive flock."""

    def __init__(self, path: Path, create: bool) -> None:
        self.path, self.create, self.fd = path, create, -1

    def __enter__(self) -> int:
        new = self.create and not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if self.create else 0)
        self.fd = os.open(self.path, flags, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            if new:                               # the new directory entry must survive a crash too
                _fsync_dir(self.path.parent)
                from cascade.disk import announce_created
                announce_created(self.path, "a settlement spool", f"set {SPOOL_DIR_ENV} or spool_dir= to keep "
                                 "it elsewhere")
        except BaseException:
            os.close(self.fd)
            raise
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)                         # releases the lock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def _lines(raw: bytes) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            log.warning("spool line %d is not JSON (cut short by a crash?): skipped", number)
            continue
        if isinstance(doc, dict):
            yield doc


def _parse(raw: bytes) -> tuple[dict[str, Settlement], set[str]]:
    settled: dict[str, Settlement] = {}
    applied: set[str] = set()
    for doc in _lines(raw):
        try:
            if doc.get("op") == "applied":
                applied.add(str(doc["id"]))
            elif doc.get("op") == "settle":
                s = Settlement.from_json(doc)
                settled.setdefault(s.id, s)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("spool record %r is malformed (%s): skipped", doc.get("id"), exc)
    return settled, applied


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
