"""``cascade data``: the outcome data the package ships (a sample) and the full public sets it can fetch.

    cascade data list [--json] [--manifest FILE]
    cascade data download NAME [--to DIR] [--sha256 FILE=HEX ...] [--trust-first-download] [--manifest FILE]

Typed errors (``DataError``, ``ConfigError``) are printed without a traceback and exit with code 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from policies.errors import ConfigError

data_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Outcome data: the sample shipped in the package, and the full public sets.")
DEFAULT_TO = "~/.cascade/data"
_MANIFEST_HELP = "A data manifest to use instead of the one shipped in the package (same format)."


def _guard(fn: Any) -> Any:
    from cascade.cli import guard
    return guard(fn)


def _sources(spec: Any) -> list[str]:
    """Where the files come from: URL prefixes up to the pinned commit (or the host), once each."""
    seen: dict[str, None] = {}
    for f in spec.files:
        parts = f.url.split("/")
        prefix = "/".join(parts[:6]) if "raw.githubusercontent.com" in f.url else "/".join(parts[:3])
        seen.setdefault(prefix)
    return list(seen)


def _set_entry(spec: Any) -> dict[str, Any]:
    unrecorded = [f.name for f in spec.unrecorded]
    digests = (f"SHA-256 recorded for all {len(spec.files)} files" if not unrecorded else
               f"no SHA-256 recorded for {len(unrecorded)} of {len(spec.files)} files ({', '.join(unrecorded[:3])}"
               f"{', ...' if len(unrecorded) > 3 else ''}): download with --sha256 FILE=HEX or --trust-first-download")
    return {"name": spec.name, "title": spec.title, "license": spec.license, "publisher": spec.publisher,
            "homepage": spec.homepage, "see_also": list(spec.see_also), "cheap": spec.cheap, "strong": spec.strong,
            "files": len(spec.files), "bytes": spec.total_bytes, "fetched_from": _sources(spec),
            "digests": digests, "unrecorded_digests": unrecorded, "prompts": spec.expect_prompts,
            "models": spec.expect_models, "notes": spec.notes}


def listing(manifest: Optional[Path] = None) -> dict[str, Any]:
    """What ``cascade data list`` shows, as data."""
    from cascade.datasets.manifest import load_manifest
    from cascade.datasets.sample import SAMPLE_ROOT, folder_names, ordered_splits, sample_index
    index = sample_index()
    folders = {}
    for name in folder_names():
        entry = index["folders"][name]
        folders[name] = {**{k: entry[k] for k in ("prompts", "models", "cheap", "strong")},
                         "splits": dict(ordered_splits(entry["splits"])), "path": str(SAMPLE_ROOT / name)}
    size = sum(f["bytes"] for e in index["folders"].values() for f in e["files"].values())
    return {"sample": {"path": str(SAMPLE_ROOT), "bytes": size, "sources": str(SAMPLE_ROOT / "SOURCES.md"),
                       "folders": folders},
            "sets": [_set_entry(spec) for spec in load_manifest(manifest).values()],
            "download": f"cascade data download NAME [--to DIR] (default DIR: {DEFAULT_TO})"}


def _print_listing(doc: dict[str, Any]) -> None:
    from rich.console import Console
    console = Console(width=None if sys.stdout.isatty() else 100, highlight=False, soft_wrap=True)
    say = lambda text: console.print(text, markup=False)          # noqa: E731
    sample = doc["sample"]
    say(f"Bundled sample ({sample['bytes'] / 1e6:.1f} MB, in the package; sources and licenses: {sample['sources']})")
    say("  cascade replay with no --data replays mmlu_pro; any folder below is a --data DIR")
    for name, f in sample["folders"].items():
        splits = ", ".join(f"{n:,} {s}" for s, n in f["splits"].items())
        say(f"  {name:<19} {f['prompts']:>6,} prompts ({splits}) · {len(f['models'])} models · "
            f"{f['cheap']} → {f['strong']}")
        say(f"  {'':<19} {f['path']}")
    say("")
    say(f"Full public sets: {doc['download']}")
    for s in doc["sets"]:
        size = f"{s['bytes'] / 1e6:,.1f} MB" if s["bytes"] is not None else "size unknown"
        shape = f"{s['prompts']:,} prompts × {s['models']} models" if s["prompts"] and s["models"] else ""
        say(f"  {s['name']:<19} {s['title']}")
        say(f"  {'':<19} source: {s['publisher']} ({s['license']}) {s['homepage']}")
        say(f"  {'':<19} {s['files']} files, {size}, from {', '.join(s['fetched_from'])}")
        say(f"  {'':<19} {s['digests']}" + (f" · converts to {shape}" if shape else ""))


@data_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print the listing as JSON."),
             manifest: Optional[Path] = typer.Option(None, "--manifest", help=_MANIFEST_HELP)) -> None:
    """The bundled sample (what replay uses with no --data) and the full sets, with sources and licenses."""
    doc = _guard(lambda: listing(manifest))
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    _print_listing(doc)


def parse_digests(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, digest = item.partition("=")
        if not sep or not name.strip() or not digest.strip():
            raise ConfigError(f"--sha256 {item!r}: expected FILE=HEX (a file name of the set, its SHA-256)")
        out[name.strip()] = digest.strip().lower()
    return out


@data_app.command("download")
def download_cmd(
        name: str = typer.Argument(..., help="The set to fetch (cascade data list)."),
        to: Path = typer.Option(Path(DEFAULT_TO), "--to", help="Where to put it: DIR/NAME is the outcome folder."),
        sha256: list[str] = typer.Option([], "--sha256", help="FILE=HEX: the digest of a file the manifest has "
                                         "none for (repeatable)."),
        trust_first: bool = typer.Option(False, "--trust-first-download", help="Accept files without a recorded "
                                         "digest and record what arrived in DIR/cascade-data.lock.json."),
        manifest: Optional[Path] = typer.Option(None, "--manifest", help=_MANIFEST_HELP)) -> None:
    """Fetch a full public set (verified against its SHA-256, resumable) and convert it to the outcome format."""
    from rich.console import Console
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def run() -> Path:
        from cascade.datasets.fetch import download_set
        from cascade.datasets.manifest import load_manifest
        sets = load_manifest(manifest)
        if name not in sets:
            raise ConfigError(f"unknown data set {name!r}; known: {', '.join(sets)} (cascade data list)")
        return download_set(sets[name], to.expanduser(), given=parse_digests(sha256), trust_first=trust_first,
                            report=lambda msg: err.print(msg, markup=False))
    folder = _guard(run)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    print(f"wrote {folder}: {meta['prompts']:,} prompts x {meta['models']} models. Replay it: "
          f"cascade replay --policy default --data {folder}")
