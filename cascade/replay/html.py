"""The replay report as a PNG plot (matplotlib, Agg canvas, no pyplot state) and as one self-contained
HTML file (the plot embedded as a base64 PNG, the tables inline)."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from cascade.replay.render import COLUMNS, ROW_LABELS, fnum, header_lines, pct, row_cells

_BASELINE_STYLE = {"always_cheap": ("s", "tab:green"), "always_strong": ("D", "tab:red"), "oracle": ("^", "tab:purple")}


def plot_png(doc: dict[str, Any], dpi: int = 110) -> bytes:
    """:func:`plot_figure` as PNG bytes."""
    buf = io.BytesIO()
    plot_figure(doc, dpi).savefig(buf, format="png")
    return buf.getvalue()


def plot_figure(doc: dict[str, Any], dpi: int = 110) -> Any:
    """Two panels: quality against $ per 1k requests (the frontier) and against the strong-call share."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_cost, ax_share = fig.subplots(1, 2)
    sweep, curves, rows = doc["sweep"], doc["curves"], doc["rows"]
    pts = sweep["points"]
    ax_cost.scatter(pts["usd_per_1k"], pts["quality"], s=4, color="0.8", label="grid points", zorder=1)
    front = sweep["frontier"]
    ax_cost.plot([p["usd_per_1k"] for p in front], [p["quality"] for p in front], color="navy", lw=2.5, alpha=0.5,
                 label="frontier (all grid points)", zorder=2)
    for name, style, color, label in (("policy", "-", "tab:blue", "policy: thresholds[0] swept"),
                                      ("classifier", "--", "tab:orange", "classifier alone"),
                                      ("random", ":", "0.4", "random"), ("oracle", "-.", "tab:purple", "oracle")):
        c = curves.get(name)
        if c is None:
            continue
        ax_cost.plot(c["usd_per_1k"], c["quality"], style, color=color, lw=1, label=label, zorder=2)
        ax_share.plot(c["strong_share"], c["quality"], style, color=color, lw=1, label=label)
    _points(ax_cost, ax_share, rows, curves)
    ax_cost.set_xlabel("$ per 1k requests")
    ax_share.set_xlabel("share of requests calling the strong model")
    ax_cost.set_title("cost-quality frontier")
    ax_share.set_title("quality vs strong-call share")
    ax_cost.legend(fontsize=7, loc="lower right")
    ax_share.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{doc['policy']['name']} on {', '.join(Path(s).name for s in doc['data']['sources'])} "
                 f"({doc['data']['split']} split, {doc['data']['n_requests']:,} requests)", fontsize=10)
    fig.tight_layout()
    return fig


def _points(ax_cost: Any, ax_share: Any, rows: dict[str, Any], curves: Any = ()) -> None:
    """The baselines and the policy's operating point on both panels (a baseline that is also drawn as a
    curve, the oracle, keeps the curve's one legend entry)."""
    for key, (marker, color) in _BASELINE_STYLE.items():
        row = rows.get(key)
        if row and row.get("quality") is not None:
            ax_cost.scatter([row["usd_per_1k"]], [row["quality"]], marker=marker, color=color, s=50, zorder=3,
                            label=None if key in curves else key.replace("_", " "))
            ax_share.scatter([row["strong_share"]], [row["quality"]], marker=marker, color=color, s=50, zorder=3)
    op = rows["policy"]
    for ax, x in ((ax_cost, op["usd_per_1k"]), (ax_share, op["strong_share"])):
        ax.scatter([x], [op["quality"]], marker="*", s=220, color="gold", edgecolor="black", zorder=4,
                   label="policy operating point" if ax is ax_cost else None)
        ax.grid(alpha=0.3)
        ax.set_ylabel("quality")


def write_plot(doc: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_bytes(plot_png(doc))
    return path


def _table(head: list[str], rows: list[list[str]], name: str, bold_first: bool = False) -> str:
    """A table in its own horizontal scroll container: the page never scrolls sideways, the table may."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr" + (' class="op"' if bold_first and i == 0 else "") + ">"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for i, r in enumerate(rows))
    return (f"<div class='scroll' data-table='{name}'><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>"
            "</table></div>")


# Every column heading and abbreviation of the report, explained once (the page's glossary).
TERMS = (
    ("quality", "mean answer score over the requests (1 = every answer right)."),
    ("retained", "quality as a share of always-strong's quality."),
    ("total $", "what the requests would cost, in USD, at the listed prices."),
    ("$ / 1k", "USD per 1,000 requests."),
    ("savings", "cost saved against sending every request to the strong model (always strong)."),
    ("strong share", "share of requests that called the strong model."),
    ("escalation", "share of requests the policy sent on to a stronger model after a failed check or call."),
    ("APGR", "average performance gap recovered: the mean, over every share of prompts sent to the strong model "
             "(highest classifier scores first), of how much of the cheap-to-strong quality gap is recovered; "
             "0 = no better than always cheap, 1 = as good as always strong."),
    ("CPT(50%), CPT(80%)", "call-performance threshold: the smallest strong share that recovers 50% / 80% of "
                           "the quality gap."),
    ("AIQ", "average improvement in quality: area under the cost-quality curve divided by the cost range "
            "(higher is better)."),
    ("t1", "the routing threshold tried by the sweep: a prompt whose classifier score is at or above it goes "
           "straight to the strong model (the policy's thresholds[0])."),
    ("t2", "the answer-checker threshold tried by the sweep: a cheap answer whose checker score (probability "
           "that it is inadequate) is above it is escalated; — when the policy has no trained checker."),
    ("oracle", "knows each answer's score and picks the cheap model whenever its answer is as good, so it can "
               "beat always strong (retained above 100%, APGR above 1)."),
    ("frontier", "the grid points no other point beats on both cost and quality."),
    ("answered / called", "share of requests a model answered / share of requests that called it "
                          "(escalated requests call two)."),
    ("—", "not applicable to this row."),
)

_CSS = ("*{box-sizing:border-box}body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1400px;"
        "color:#222;line-height:1.4}h1{font-size:1.4em;overflow-wrap:anywhere}"
        ".scroll{overflow-x:auto;max-width:100%;margin:1em 0}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}"
        "td:first-child,th:first-child{text-align:left}"
        "tr.op{font-weight:bold;background:#fff8dc}p.meta{margin:2px 0;font-size:90%;overflow-wrap:anywhere}"
        ".note{color:#666;font-size:90%}img{display:block;width:100%;height:auto}"
        "dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 12px}dt{font-weight:bold}dd{margin:0}"
        "@media (max-width:600px){dl{grid-template-columns:1fr}dd{margin:0 0 6px 1em}}")


def _glossary() -> str:
    items = "".join(f"<dt data-term='{html.escape(t)}'>{html.escape(t)}</dt><dd>{html.escape(d)}</dd>"
                    for t, d in TERMS)
    return f"<h2 id='glossary'>Glossary</h2><dl class='glossary'>{items}</dl>"


def render_html(doc: dict[str, Any]) -> str:
    png = base64.b64encode(plot_png(doc)).decode("ascii")
    rows = [[label, *row_cells(doc["rows"][key], key)] for key, label in ROW_LABELS
            if doc["rows"].get(key) and doc["rows"][key].get("quality") is not None]
    calls = doc["traffic"]["calls"]
    traffic = [[m, pct(s), pct(calls.get(m)) if m in calls else ""] for m, s in doc["traffic"]["answered"].items()]
    front = [[fnum(p["t1"], ".2f"), fnum(p["t2"], ".2f"), fnum(p["quality"]), fnum(p["usd_per_1k"], ".4f"),
              pct(p["strong_share"]), pct(p["escalation_rate"])] for p in doc["sweep"]["frontier"]]
    name = html.escape(doc["policy"]["name"])
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>Replay: {name}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Replay of policy {name}</h1>",
             *(f"<p class='meta'>{html.escape(line)}</p>" for line in header_lines(doc)),
             f"<img src=\"data:image/png;base64,{png}\" alt=\"cost-quality frontier and quality against the "
             f"strong-call share\">",
             "<h2>Results</h2>", _table(["", *COLUMNS], rows, "results", bold_first=True),
             "<h2>Traffic</h2>", _table(["model", "answered", "called"], traffic, "traffic"),
             "<h2>Cost-quality frontier</h2>",
             _table(["t1", "t2", "quality", "$ / 1k", "strong share", "escalation"], front, "frontier"),
             _glossary(),
             "<h2>Notes</h2><ul>", *(f"<li class='note'>{html.escape(n)}</li>" for n in doc["notes"]), "</ul>",
             "</body></html>"]
    return "\n".join(parts)


def write_html(doc: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_html(doc), encoding="utf-8")
    return path
