"""``SOURCES.md`` of the bundled sample: where each folder comes from, under which license, what was kept.
Written by the sample build from ``sample.json`` and the data manifest (so it cannot drift from them)."""
from __future__ import annotations

from typing import Any, Mapping

from cascade.datasets.manifest import DataSetSpec

LICENSE_FILES = {"Apache-2.0": "Apache-2.0.txt"}
MIT_FILES = {"routerbench_subset": "MIT-RouterBench.txt", "llmrouter": "MIT-LLMRouter.txt"}

HEADER = """\
# Sources and licenses of the bundled outcome sample

Small samples of public per-prompt outcome data (which answer each model gave, whether it was right, what it
cost), kept in deepseek-cascade's outcome format so that `cascade replay` runs with no download. Rows were
selected, nothing else was changed: prompts, scores, token counts, costs, extracted answers and answer texts
are those of the sources, as converted into the outcome format (see `cascade data list` for the full sets and
the pinned files they are converted from). Each `meta.json` is the source folder's, with the sample's counts,
how its rows were chosen (`sample_of`) and the natural cheap / strong pair (`llmrouter`'s source names none:
its pair is the one the data manifest names; `mmlu_pro`'s also maps the catalog alias `deepseek-coder` to
DeepSeek-Coder-V2, the second opinion of the `quality-match` policy).

License texts are in `../LICENSES/`. Selection: {selection}

"""


def _license_file(folder: str, spec: DataSetSpec) -> str:
    if spec.license == "MIT":
        return MIT_FILES[folder]
    return LICENSE_FILES[spec.license]


def _folder_section(folder: str, entry: Mapping[str, Any], spec: DataSetSpec) -> list[str]:
    splits = ", ".join(f"{n:,} {s}" for s, n in entry["splits"].items())
    lines = [f"## {folder}", "",
             f"- **Source**: {spec.publisher} — {spec.homepage}"
             + (f" (see also {'; '.join(spec.see_also)})" if spec.see_also else ""),
             f"- **License**: {spec.license} (`../LICENSES/{_license_file(folder, spec)}`)",
             f"- **Kept**: {entry['prompts']:,} prompts ({splits}); outcomes of {', '.join(entry['models'])}",
             f"- **Pair**: {entry['cheap']} → {entry['strong']}",
             f"- **Score**: {spec.score}", "", "| file | rows | bytes | SHA-256 |", "|---|---|---|---|"]
    for name, f in sorted(entry["files"].items()):
        rows = f"{f['rows']:,}" if "rows" in f else ""
        lines.append(f"| {name} | {rows} | {f['bytes']:,} | `{f['sha256']}` |")
    return lines + [""]


def sources_markdown(index: Mapping[str, Any], manifest: Mapping[str, DataSetSpec]) -> str:
    out = [HEADER.format(selection=index["selection"])]
    for folder, entry in index["folders"].items():
        out.append("\n".join(_folder_section(folder, entry, manifest[folder])))
    return "\n".join(out).rstrip("\n") + "\n"
