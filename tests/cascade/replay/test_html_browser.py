"""The HTML replay report in a real browser (the system's chromium) at a phone's width and a desktop's:
the page never scrolls sideways, every table's figures are there (inside their scroll containers), the
plot fits the width, and the glossary explains every abbreviation the tables use."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cascade import commands
from cascade.cli import app
from cascade.replay.html import TERMS
from cascade.replay.render import COLUMNS

commands.register(app)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """``cascade replay --sweep --html`` over the bundled sample (the README's first command's data)."""
    page = tmp_path_factory.mktemp("report") / "report.html"
    res = CliRunner().invoke(app, ["replay", "--policy", "default", "--sweep", "--html", str(page), "--quiet"])
    assert res.exit_code == 0, res.output
    return page


LAYOUT = """() => {
    const el = document.documentElement;
    const tables = [...document.querySelectorAll('[data-table]')].map(box => {
        const cells = [...box.querySelectorAll('td')];
        const r = box.getBoundingClientRect();
        return {name: box.dataset.table, width: r.width, right: r.right, scrollable: box.scrollWidth > box.clientWidth,
                overflow: getComputedStyle(box).overflowX,
                cells: cells.map(td => td.textContent),
                hidden: cells.filter(td => td.getClientRects().length === 0).length,
                headers: [...box.querySelectorAll('th')].map(th => th.textContent)};
    });
    const img = document.querySelector('img').getBoundingClientRect();
    return {scrollWidth: el.scrollWidth, innerWidth: window.innerWidth, tables, imgRight: img.right,
            imgWidth: img.width, viewport: document.querySelector('meta[name=viewport]')?.content,
            terms: [...document.querySelectorAll('dl.glossary dt')].map(dt => dt.dataset.term)};
}"""


@pytest.mark.parametrize("width", [412, 1400])
def test_the_report_reads_at_phone_and_desktop_width(browser, report, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(report.as_uri())
    got = page.evaluate(LAYOUT)
    page.close()
    assert got["viewport"] == "width=device-width, initial-scale=1"
    assert got["scrollWidth"] <= got["innerWidth"] == width           # no sideways scroll of the page
    assert 0 < got["imgWidth"] and got["imgRight"] <= width            # the plot scaled to the width
    tables = {t["name"]: t for t in got["tables"]}
    assert set(tables) == {"results", "traffic", "frontier"}
    for t in tables.values():
        assert t["right"] <= width and t["overflow"] == "auto"          # a table wider than the page scrolls inside
        assert t["cells"] and t["hidden"] == 0 and all(c != "" for c in t["cells"][:3])
    assert tables["results"]["headers"] == ["", *COLUMNS]
    assert tables["results"]["cells"][0] == "policy (classifier + checks)"
    if width == 412:
        assert tables["results"]["scrollable"]                          # eleven columns: scroll inside the box
    defined = set(got["terms"])
    for heading in {*COLUMNS, "t1", "t2", "oracle", "—"} - {"CPT(50%)", "CPT(80%)"}:
        assert heading in defined, heading
    assert "CPT(50%), CPT(80%)" in defined and defined == {t for t, _ in TERMS}


def test_oracle_is_once_in_each_plot_legend():
    from cascade.replay.html import plot_figure

    res = CliRunner().invoke(app, ["replay", "--policy", "default", "--sweep", "--json", "--quiet"])
    doc = json.loads(res.stdout)
    assert "oracle" in doc["curves"] and doc["rows"]["oracle"]["quality"] is not None    # drawn twice: curve + point
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in plot_figure(doc).axes]
    assert [entries.count("oracle") for entries in legends] == [1, 1]
