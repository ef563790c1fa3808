"""``/dashboard`` in a real browser (the system's chromium): a real ``cascade serve`` process with keys and a
per-user cap, real traffic to the fake provider; the numbers the page shows equal ``/metrics`` and the
budget ledger, and they follow new traffic without a reload."""
from __future__ import annotations

import pytest

from cascade.budget import open_budget_store
from tests.harness.browser import page_tables

from .conftest import ALICE_KEY, BOB_KEY
from .dashboard_traffic import (EXPECTED_CODES, OPS_KEY, USER_CAP_USD, expected_from_ledger,
                                expected_from_metrics, quantile, send_traffic)

pytestmark = pytest.mark.slow


@pytest.fixture
def dashboard_server(fake_provider, spawn_serve, tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  {ALICE_KEY}: alice\n  {BOB_KEY}: bob\n  {OPS_KEY}: ops\nadmins: [ops]\n")
    store_url = f"sqlite:///{tmp_path}/spend.db"
    [served] = spawn_serve(fake_provider.url, ["--keys", str(keys), "--budget-store", store_url,
                                               "--user-cap-usd", str(USER_CAP_USD), "--cap-window", "day"])
    return served, store_url


def values(shown, table, col):
    return {key: float(cells[col]["value"]) for key, cells in shown["tables"][table].items()}


def assert_page_matches(shown, url, store_url):
    want = expected_from_metrics(url)
    store = open_budget_store(store_url)
    try:
        ledger = expected_from_ledger(store)
    finally:
        store.close()
    f = shown["fields"]
    assert float(f["spend-total"]["value"]) == pytest.approx(ledger["total"]) == pytest.approx(want["spend"])
    assert f["spend-total"]["text"] == f"${ledger['total']:.6f}"
    assert values(shown, "spend-by-model", "usd") == pytest.approx(ledger["model"])
    assert values(shown, "spend-by-user", "usd") == pytest.approx(ledger["user"])
    assert values(shown, "spend-by-day", "usd") == pytest.approx(ledger["day"])
    assert values(shown, "routing", "count") == want["answered"]
    assert values(shown, "escalation-reasons", "count") == want["reasons"]
    assert values(shown, "errors", "count") == want["errors"]
    assert float(f["escalated-share"]["value"]) == pytest.approx(want["escalated"] / sum(want["answered"].values()))
    assert float(f["latency-p50"]["value"]) == pytest.approx(quantile(0.5, want["buckets"]))
    assert float(f["latency-p95"]["value"]) == pytest.approx(quantile(0.95, want["buckets"]))
    caps = shown["tables"]["caps"]
    for user in ("alice", "bob"):
        cap = caps[f"user:{user}:day"]
        assert float(cap["limit"]["value"]) == USER_CAP_USD
        assert float(cap["spent"]["value"]) == pytest.approx(ledger["user"][user])
        assert float(cap["remaining"]["value"]) == pytest.approx(USER_CAP_USD - ledger["user"][user])
    return want


def wait_for_requests(page, total):
    page.wait_for_function("n => Number(document.querySelector('[data-field=\"requests-total\"]')"
                           ".dataset.value) === n", arg=total, timeout=30_000)


def test_the_dashboard_shows_the_metrics_and_the_ledger_and_refreshes(browser, fake_provider, dashboard_server):
    served, store_url = dashboard_server
    assert send_traffic(fake_provider, served.url, ALICE_KEY, BOB_KEY) == EXPECTED_CODES
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(served.url + f"/dashboard?every=1#key={OPS_KEY}")
    wait_for_requests(page, len(EXPECTED_CODES))
    assert OPS_KEY not in page.url                          # the key left the address bar
    shown = page_tables(page)
    want = assert_page_matches(shown, served.url, store_url)
    assert want["answered"] == {"deepseek-v2": 3, "gpt-4o": 2} and want["reasons"] == {"check:non_empty": 2}
    assert want["errors"] == {"not_found": 1, "budget_exceeded": 1, "invalid_request": 1}
    assert shown["tables"]["routing"]["gpt-4o"]["share"]["text"] == "40.0%"

    updates = int(page.get_attribute("body", "data-updates"))
    assert send_traffic(fake_provider, served.url, ALICE_KEY, BOB_KEY) == EXPECTED_CODES
    wait_for_requests(page, 2 * len(EXPECTED_CODES))        # no reload: the page polled
    assert int(page.get_attribute("body", "data-updates")) > updates
    want = assert_page_matches(page_tables(page), served.url, store_url)
    assert want["answered"] == {"deepseek-v2": 6, "gpt-4o": 4}
    page.close()


def test_the_dashboard_asks_for_an_admin_key(browser, fake_provider, dashboard_server):
    served, _ = dashboard_server
    send_traffic(fake_provider, served.url, ALICE_KEY, BOB_KEY)
    page = browser.new_page()
    page.goto(served.url + f"/dashboard?every=1#key={ALICE_KEY}")
    page.wait_for_selector("#auth.shown", timeout=30_000)
    assert "not an admin" in page.text_content("#status")
    assert page_tables(page)["tables"]["spend-by-user"] == {}          # nothing of anyone's spend
    page.fill("#key", OPS_KEY)
    page.click("button[type=submit]")
    wait_for_requests(page, len(EXPECTED_CODES))
    assert set(page_tables(page)["tables"]["spend-by-user"]) == {"alice", "bob"}
    assert page.is_hidden("#auth")
    page.close()


@pytest.mark.parametrize("width", [412, 1400])
def test_the_dashboard_fits_a_phone_and_a_desktop(browser, fake_provider, dashboard_server, width):
    served, _ = dashboard_server
    send_traffic(fake_provider, served.url, ALICE_KEY, BOB_KEY)
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(served.url + f"/dashboard?every=1#key={OPS_KEY}")
    wait_for_requests(page, len(EXPECTED_CODES))
    assert page.evaluate("document.documentElement.scrollWidth") <= width     # no sideways scroll of the page
    shown = page_tables(page)
    assert set(shown["tables"]["caps"]) == {"user:alice:day", "user:bob:day"}
    page.close()
