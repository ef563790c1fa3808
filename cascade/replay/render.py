"""The replay report as rich tables (the CLI's default output). Reads only the report dict."""
from __future__ import annotations

import os
from typing import Any

ROW_LABELS = (("policy", "policy (classifier + checks)"), ("classifier", "policy classifier alone"),
              ("always_cheap", "always cheap"), ("always_strong", "always strong"), ("random", "random"),
              ("oracle", "oracle"))
COLUMNS = ("quality", "retained", "total $", "$ / 1k", "savings", "strong share", "escalation",
           "APGR", "CPT(50%)", "CPT(80%)", "AIQ")
N_COST_COLUMNS = 7          # the first table: cost and quality; the second: the routing metrics (fits 80-100 columns)
GLOSSARY = (
    "quality: mean answer score; retained: quality as a share of always-strong's; savings: cost saved against "
    "always-strong; strong share: requests that called the strong model; escalation: requests the policy sent "
    "on to a stronger model after a failed check or call.",
    "APGR (average performance gap recovered): the mean, over every share of prompts sent to the strong model "
    "(highest scores first), of how much of the cheap-to-strong quality gap is recovered; 0 = no better than "
    "cheap, 1 = as good as strong. CPT(50%) / CPT(80%): the smallest strong share that recovers 50% / 80% of the "
    "gap. AIQ: area under the cost-quality curve divided by the cost range (higher is better).",
    "The oracle knows each answer's score and picks the cheap model whenever it is as good, so it can beat "
    "always-strong (retained above 100%, APGR above 1): on some prompts the cheap answer is the better one.",
    "t1, t2 (frontier): the routing thresholds tried by the sweep.",
)


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100.0 * x:.{digits}f}%"


def fnum(x: float | None, fmt: str = ".3f") -> str:
    return "—" if x is None else format(x, fmt)


def row_cells(row: dict[str, Any], name: str) -> list[str]:
    esc = row.get("escalation_rate")
    return [fnum(row.get("quality")), pct(row.get("quality_retained")), fnum(row.get("total_usd"), ".4f"),
            fnum(row.get("usd_per_1k"), ".4f"), pct(row.get("savings_vs_strong")), pct(row.get("strong_share")),
            pct(esc) if name == "policy" else "—", fnum(row.get("apgr")), pct(row.get("cpt50")),
            pct(row.get("cpt80")), fnum(row.get("aiq"))]


def header_lines(doc: dict[str, Any]) -> list[str]:
    p, d = doc["policy"], doc["data"]
    mapping = "; ".join(", ".join(f"{a} = {m}" for a, m in mp.items()) for mp in d["models"])
    thresholds = ", ".join(f"{t:g}" for t in p["thresholds"]) or "none"
    checker = "" if p["checker_threshold"] is None else f" · answer_checker threshold {p['checker_threshold']:g}"
    prices = "; ".join(f"{a}: {v}" for a, v in d["prices"].items())
    return [f"policy {p['name']} ({p['source']}) · classifier {p['classifier']} · thresholds {thresholds}{checker} "
            f"· on_exhausted {p['on_exhausted']}",
            f"data ({d['kind']}): {', '.join(d['sources'])} · split {d['split']} · {d['n_requests']:,} requests"
            + (f" ({d['n_dropped']:,} left out)" if d["n_dropped"] else ""),
            f"models: {mapping}", f"prices: {prices}", f"scores: {d['scores']}"]


class _AtWidth:
    """``console`` printing at ``width`` columns."""

    def __init__(self, console: Any, width: int) -> None:
        self.console, self.width = console, width

    def print(self, *objects: Any, **kw: Any) -> None:
        self.console.print(*objects, width=self.width, **kw)


def report_width(console: Any) -> int:
    """The console's width, or ``COLUMNS`` when set and narrower (a console writing to a pipe is wide)."""
    columns = os.environ.get("COLUMNS", "")
    return min(console.width, int(columns)) if columns.isdigit() and int(columns) >= 40 else console.width


def print_report(doc: dict[str, Any], console: Any, frontier_rows: int = 15) -> None:
    """The report, each table at most the width of :func:`report_width`, then a glossary of its terms."""
    from rich.table import Table
    console = _AtWidth(console, report_width(console))
    if doc.get("summary"):
        console.print(f"{doc['policy']['name']}: {doc['summary']['line']}", highlight=False, markup=False, style="bold")
    for line in header_lines(doc):
        console.print(line, highlight=False, markup=False)
    for title, lo, hi in (("Replay: cost and quality", 0, N_COST_COLUMNS),
                          ("Replay: routing metrics", N_COST_COLUMNS, len(COLUMNS))):
        table = Table("", *COLUMNS[lo:hi], title=title, title_justify="left")
        for key, label in ROW_LABELS:
            row = doc["rows"].get(key)
            if row is not None and row.get("quality") is not None:
                table.add_row(label, *row_cells(row, key)[lo:hi], style="bold" if key == "policy" else None)
        console.print(table)
    traffic = Table("model", "answered", "called", title="Traffic (policy)", title_justify="left")
    calls = doc["traffic"]["calls"]
    for model, share in doc["traffic"]["answered"].items():
        traffic.add_row(model, pct(share), pct(calls.get(model)) if model in calls else "")
    console.print(traffic)
    if doc.get("by_source"):
        by = Table("source", "requests", "quality", "cheap", "strong", "$ / 1k", "strong share",
                   title="By source (policy)", title_justify="left")
        for src, f in doc["by_source"].items():
            by.add_row(src, f"{f['n']:,}", fnum(f["quality"]), fnum(f["q_cheap"]), fnum(f["q_strong"]),
                       fnum(f["usd_per_1k"], ".4f"), pct(f["strong_share"]))
        console.print(by)
    if doc["sweep"]["full"]:
        console.print(frontier_table(doc, frontier_rows))
    for note in doc["notes"]:
        console.print(f"note: {note}", highlight=False, markup=False, style="dim")
    for line in GLOSSARY:
        console.print(line, highlight=False, markup=False, style="dim")


def frontier_table(doc: dict[str, Any], limit: int) -> Any:
    from rich.table import Table
    front = doc["sweep"]["frontier"]
    step = max(1, -(-len(front) // limit))
    shown = front[::step] + ([front[-1]] if (len(front) - 1) % step else [])
    table = Table("t1", "t2", "quality", "$ / 1k", "strong share", "escalation",
                  title=f"Cost-quality frontier ({len(front)} of {len(doc['sweep']['points']['t1'])} grid points)",
                  title_justify="left")
    for p in shown:
        table.add_row(fnum(p["t1"], ".2f"), fnum(p["t2"], ".2f"), fnum(p["quality"]), fnum(p["usd_per_1k"], ".4f"),
                      pct(p["strong_share"]), pct(p["escalation_rate"]))
    return table
