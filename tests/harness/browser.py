"""A real browser for the tests: the system's ``chromium`` (Debian package; ``.ci/run`` installs it),
driven by Playwright for Python. Never a browser downloaded by ``playwright install`` (no internet).

    def test_page(browser):            # a Browser per test module; skipped only when chromium is absent
        page = browser.new_page(viewport={"width": 412, "height": 900})
"""
from __future__ import annotations

import shutil
from typing import Any, Iterator

import pytest


def chromium_path() -> str | None:
    return shutil.which("chromium")


def launch(playwright: Any) -> Any:
    """The system chromium, headless (``--no-sandbox``: CI containers run as root)."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])


@pytest.fixture(scope="module")        # per module: Playwright's sync API must not outlive into async tests
def browser() -> Iterator[Any]:
    if chromium_path() is None:
        pytest.skip("no `chromium` on PATH: the browser tests need Debian's chromium package "
                    "(apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def page_tables(page: Any) -> dict[str, Any]:
    """What a page shows in its ``data-*`` marked elements: ``{"fields": {name: value}, "tables":
    {table: {row key: {column: value}}}}`` (values as the page holds them, strings)."""
    return page.evaluate("""() => {
        const fields = {}, tables = {};
        document.querySelectorAll('[data-field]').forEach(el => {
            fields[el.dataset.field] = {value: el.dataset.value, text: el.textContent}; });
        document.querySelectorAll('[data-table]').forEach(t => {
            const rows = {};
            t.querySelectorAll('tr[data-key]').forEach(tr => {
                const cells = {};
                tr.querySelectorAll('[data-col]').forEach(td => {
                    cells[td.dataset.col] = {value: td.dataset.value, text: td.textContent}; });
                rows[tr.dataset.key] = cells; });
            tables[t.dataset.table] = rows; });
        return {fields, tables};
    }""")
