"""The manifest of the full public outcome sets (``manifest.json`` beside this module) and the lock file.

A set names its publisher, license, natural cheap/strong pair, the converter that turns its files into the
outcome format, and its files: each with the URL it is fetched from (pinned to a commit), its size, and its
SHA-256. A file may have ``"sha256": null`` (its digest not yet recorded): it is then fetched only with a
digest given on the command line (``--sha256 NAME=HEX``) or with ``--trust-first-download``, which records
the digest of what arrived in the lock file (``cascade-data.lock.json`` in the target folder); later
downloads into that folder are checked against it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cascade.datasets.errors import ManifestError

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
LOCK_NAME = "cascade-data.lock.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._()@+-]*")


@dataclass(frozen=True)
class FileSpec:
    name: str                   # file name under the set's raw folder
    url: str
    size: int | None
    sha256: str | None          # None: not recorded (needs --sha256 or --trust-first-download)
    git_blob: str | None = None
    model: str | None = None    # the model whose outputs the file holds, where the converter needs it


@dataclass(frozen=True)
class DataSetSpec:
    name: str
    title: str
    license: str
    publisher: str
    homepage: str
    converter: str
    cheap: str
    strong: str
    score: str
    files: tuple[FileSpec, ...]
    see_also: tuple[str, ...] = ()
    responses_for: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()     # catalog alias -> dataset model, beyond the pair (meta.json)
    expect_prompts: int | None = None
    expect_models: int | None = None
    notes: str = ""

    @property
    def total_bytes(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def unrecorded(self) -> tuple[FileSpec, ...]:
        """Files whose SHA-256 the manifest does not record."""
        return tuple(f for f in self.files if f.sha256 is None)


def is_sha256(value: Any) -> bool:
    return isinstance(value, str) and bool(_HEX64.fullmatch(value))


def _text(entry: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: {key!r} must be a non-empty string")
    return value


def _file(entry: Any, where: str) -> FileSpec:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: a file entry must be an object")
    name = _text(entry, "name", where)
    if not _SAFE_NAME.fullmatch(name) or name.endswith(".part"):
        raise ManifestError(f"{where}: file name {name!r} must be a plain file name")
    url = _text(entry, "url", f"{where} ({name})")
    if not url.startswith(("https://", "http://")):
        raise ManifestError(f"{where} ({name}): url must be http(s), got {url!r}")
    sha256, size = entry.get("sha256"), entry.get("size")
    if sha256 is not None and not is_sha256(sha256):
        raise ManifestError(f"{where} ({name}): sha256 must be 64 lower-case hex digits or null")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ManifestError(f"{where} ({name}): size must be a non-negative integer or null")
    return FileSpec(name, url, size, sha256, entry.get("git_blob"), entry.get("model"))


def _set(name: str, entry: Any, where: str) -> DataSetSpec:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: set {name!r} must be an object")
    at = f"{where}: sets.{name}"
    files = entry.get("files")
    if not isinstance(files, list) or not files:
        raise ManifestError(f"{at}: 'files' must be a non-empty list")
    specs = tuple(_file(f, f"{at}.files[{i}]") for i, f in enumerate(files))
    names = [f.name for f in specs]
    if len(set(names)) != len(names):
        raise ManifestError(f"{at}: two files share a name")
    pair, expect, aliases = entry.get("pair") or {}, entry.get("expect") or {}, entry.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) and v for v in aliases.values()):
        raise ManifestError(f"{at}.aliases: expected {{catalog alias: dataset model}}")
    return DataSetSpec(
        name=name, title=_text(entry, "title", at), license=_text(entry, "license", at),
        publisher=_text(entry, "publisher", at), homepage=_text(entry, "homepage", at),
        converter=_text(entry, "converter", at), cheap=_text(pair, "cheap", f"{at}.pair"),
        strong=_text(pair, "strong", f"{at}.pair"), score=_text(entry, "score", at), files=specs,
        see_also=tuple(entry.get("see_also") or ()), responses_for=tuple(entry.get("responses_for") or ()),
        aliases=tuple(sorted(aliases.items())),
        expect_prompts=expect.get("prompts"), expect_models=expect.get("models"), notes=entry.get("notes", ""))


def load_manifest(path: str | Path | None = None) -> dict[str, DataSetSpec]:
    """The sets of a manifest file (default: the one shipped with the package), by name."""
    where = Path(path) if path is not None else MANIFEST_PATH
    try:
        doc = json.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read the data manifest: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ManifestError(f"{where}: the data manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("sets"), dict):
        raise ManifestError(f"{where}: expected {{\"format\": 1, \"sets\": {{...}}}}")
    return {name: _set(name, entry, str(where)) for name, entry in doc["sets"].items()}


def read_lock(folder: Path) -> dict[str, dict[str, str]]:
    """``{set: {file name: sha256}}`` recorded by earlier trusted first downloads into ``folder``."""
    path = folder / LOCK_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: unreadable lock file: {exc}") from None
    ok = isinstance(doc, dict) and all(isinstance(v, dict) and all(is_sha256(d) for d in v.values())
                                       for v in doc.values())
    if not ok:
        raise ManifestError(f"{path}: expected {{set: {{file: sha256}}}}; fix or remove it")
    return doc


def write_lock(folder: Path, lock: Mapping[str, Mapping[str, str]]) -> Path:
    """Write the lock file whole (a temporary file renamed over the old one)."""
    path = folder / LOCK_NAME
    tmp = path.with_name(f".{LOCK_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
