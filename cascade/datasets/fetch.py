"""Download a set's files, verified, resumable, then convert them: ``cascade data download NAME --to DIR``.

Layout under DIR: ``DIR/NAME/`` the outcome folder (what ``--data`` takes); ``DIR/.raw/NAME/`` the downloaded
files, kept so that a second run converts without fetching again; ``DIR/cascade-data.lock.json`` digests
recorded by ``--trust-first-download``.

A file is fetched into ``FILE.part``. An interrupted transfer leaves the part; the next attempt (within the
same run, up to ``ATTEMPTS`` times, or a later run) asks for the rest with an HTTP ``Range`` request and
starts over if the server ignores it. A complete part is hashed: on the expected SHA-256 it is renamed to
``FILE``; on any other it is deleted and :class:`DigestMismatch` raised. The outcome folder is written only
after every file verified, into a temporary folder renamed into place: a failure leaves nothing half-written.
A file already present under ``.raw`` (from an earlier run, or put there by hand on a machine without
network) is verified and used as it is.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from cascade.datasets.errors import DigestMismatch, DigestUnknown, DownloadFailed, SourceUnreachable
from cascade.datasets.manifest import DataSetSpec, FileSpec, is_sha256, read_lock, write_lock

ATTEMPTS = 4                 # transfers of one file per run (the first + resumptions after a cut)
TIMEOUT_S = 30.0
Report = Callable[[str], None]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Expected:
    sha256: str | None       # None: trust the first download and record it
    origin: str              # "manifest" | "--sha256" | "lock file" | "first download"


def expected_digests(spec: DataSetSpec, given: Mapping[str, str], lock: Mapping[str, Mapping[str, str]],
                     trust_first: bool) -> dict[str, Expected]:
    """The digest each file must have, before anything is fetched; DigestUnknown names every file without one."""
    unknown_given = sorted(set(given) - {f.name for f in spec.files})
    if unknown_given:
        raise DigestUnknown(f"--sha256 names file(s) {', '.join(unknown_given)} that set {spec.name!r} does not have")
    out: dict[str, Expected] = {}
    missing: list[FileSpec] = []
    for f in spec.files:
        g, locked = given.get(f.name), lock.get(spec.name, {}).get(f.name)
        if f.sha256 and g and g != f.sha256:
            raise DigestMismatch(f"--sha256 {f.name}={g} contradicts the manifest's {f.sha256}",
                                 url=f.url, expected=f.sha256, actual=g)
        if f.sha256 or g or locked:
            out[f.name] = Expected(f.sha256 or g or locked,
                                   "manifest" if f.sha256 else "--sha256" if g else "lock file")
        elif trust_first:
            out[f.name] = Expected(None, "first download")
        else:
            missing.append(f)
    if missing:
        names = ", ".join(f.name for f in missing)
        raise DigestUnknown(f"set {spec.name!r}: no SHA-256 is recorded for {names}. Give each as "
                            f"--sha256 NAME=HEX (from a source you trust), or pass --trust-first-download to "
                            f"accept what arrives and record its digest in the lock file")
    return out


def _unreachable(url: str, dest: Path, exc: Exception) -> SourceUnreachable:
    reason = str(exc) or type(exc).__name__
    return SourceUnreachable(
        f"cannot reach {url} ({reason}). This machine may be offline or the host blocked: fetch that file "
        f"elsewhere and put it at {dest} (it is checked against its SHA-256), then run the command again; "
        f"the bundled sample needs no network (cascade replay --policy default)", url=url)


def _transfer(client: Any, url: str, part: Path) -> None:
    """One GET of what ``part`` lacks (Range when it has bytes already); raises httpx errors on a cut."""
    import httpx
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}          # byte ranges count the bytes as stored
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 416 and offset:
            return                                  # nothing left to send: the part is whole (the digest will tell)
        if resp.status_code not in (200, 206):
            raise DownloadFailed(f"{url}: HTTP {resp.status_code} {resp.reason_phrase}", url=url,
                                 status_code=resp.status_code)
        start = _range_start(resp.headers.get("content-range")) if resp.status_code == 206 else 0
        if start not in (0, offset):
            raise httpx.RemoteProtocolError(f"asked for bytes {offset}- and got a range starting at {start}")
        with part.open("r+b" if start else "wb") as fh:
            fh.seek(start)
            fh.truncate()
            for block in resp.iter_raw():             # as received: a cut keeps every byte that arrived
                fh.write(block)


def _range_start(header: str | None) -> int:
    try:
        unit, _, rest = (header or "").partition(" ")
        return int(rest.split("-", 1)[0]) if unit == "bytes" else -1
    except ValueError:
        return -1


def fetch_file(client: Any, f: FileSpec, dest: Path, expected: Expected, report: Report) -> str:
    """``dest`` holds the verified file afterwards; returns its SHA-256."""
    import httpx
    if not dest.exists():
        part = dest.with_name(dest.name + ".part")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _transfer(client, f.url, part)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
                raise _unreachable(f.url, dest, exc) from None
            except (httpx.TransportError, httpx.StreamError) as exc:
                if attempt == ATTEMPTS:
                    raise DownloadFailed(f"{f.url}: the transfer broke {ATTEMPTS} times (last: {exc}); "
                                         f"run the command again to resume from {part}", url=f.url) from None
                report(f"  {f.name}: transfer broke at {part.stat().st_size if part.exists() else 0:,} bytes "
                       f"({type(exc).__name__}); resuming")
        _accept(part, dest, f, expected)
    actual = sha256_of(dest)
    if expected.sha256 is not None and actual != expected.sha256:
        raise DigestMismatch(f"{dest}: SHA-256 is {actual}, the {expected.origin} says {expected.sha256} "
                             f"({f.url}). Remove the file and run the command again", url=f.url,
                             expected=expected.sha256, actual=actual)
    return actual


def _accept(part: Path, dest: Path, f: FileSpec, expected: Expected) -> None:
    actual = sha256_of(part)
    if expected.sha256 is not None and actual != expected.sha256:
        part.unlink()
        raise DigestMismatch(f"{f.url}: the downloaded file's SHA-256 is {actual}, the {expected.origin} says "
                             f"{expected.sha256}; the download was discarded. The source may have changed or "
                             f"the transfer been altered: nothing was written", url=f.url,
                             expected=expected.sha256, actual=actual)
    os.replace(part, dest)


def download_set(spec: DataSetSpec, to: Path, *, given: Mapping[str, str] | None = None, trust_first: bool = False,
                 report: Report = lambda _m: None, client: Any = None) -> Path:
    """Fetch, verify and convert set ``spec`` into ``to / spec.name``; returns that folder.
    ``given``: file name -> SHA-256 from the command line; ``client``: an ``httpx.Client`` to use."""
    given = dict(given or {})
    from cascade.datasets.convert import convert
    from cascade.datasets.outcome_format import write_folder
    for name, hexdigest in given.items():
        if not is_sha256(hexdigest):
            raise DigestUnknown(f"--sha256 {name}={hexdigest}: expected 64 lower-case hex digits")
    to.mkdir(parents=True, exist_ok=True)
    lock = read_lock(to)
    expected = expected_digests(spec, given, lock, trust_first)
    raw = to / ".raw" / spec.name
    raw.mkdir(parents=True, exist_ok=True)
    digests = _fetch_all(spec, raw, expected, report, client)
    trusted = {n: d for n, d in digests.items() if expected[n].origin in ("first download", "--sha256")}
    if trusted:
        lock.setdefault(spec.name, {}).update(trusted)
        report(f"recorded {len(trusted)} digest(s) in {write_lock(to, lock)}")
    report(f"converting {spec.name} into the outcome format")
    tables, meta = convert(raw, spec)
    meta["files"] = {f.name: {"url": f.url, "sha256": digests[f.name]} for f in spec.files}
    return write_folder(tables, meta, to / spec.name)


def _fetch_all(spec: DataSetSpec, raw: Path, expected: Mapping[str, Expected], report: Report,
               client: Any) -> dict[str, str]:
    import httpx
    own = client is None
    if own:
        client = httpx.Client(timeout=httpx.Timeout(TIMEOUT_S), follow_redirects=True,
                              headers={"User-Agent": "deepseek-cascade data download"})
    try:
        digests = {}
        for i, f in enumerate(spec.files, 1):
            size = f"{f.size / 1e6:.1f} MB" if f.size is not None else "size unknown"
            report(f"[{i}/{len(spec.files)}] {f.name} ({size})")
            digests[f.name] = fetch_file(client, f, raw / f.name, expected[f.name], report)
        return digests
    finally:
        if own:
            client.close()
