"""``/dashboard`` and ``/dashboard/data.json``: the figures equal ``/metrics`` and the ledger; admin keys only."""
from __future__ import annotations

import re

import httpx
import pytest

from cascade.server.auth import KeyRing, load_keys
from cascade.server.dashboard import histogram_quantile
from policies.errors import ConfigError

from .conftest import ALICE_KEY, API_KEYS, BOB_KEY
from .dashboard_traffic import (EXPECTED_CODES, OPS_KEY, USER_CAP_USD, expected_from_ledger,
                                expected_from_metrics, quantile, send_traffic)

ADMIN_KEYS = KeyRing({**API_KEYS, OPS_KEY: "ops"}, admins=["ops"])


def data(served, key=OPS_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(served.url + "/dashboard/data.json", headers=headers, timeout=30)


def test_dashboard_figures_are_the_metrics_and_the_ledger(serve, fake_provider, tmp_path):
    served = serve(keys=ADMIN_KEYS, user_cap_usd=USER_CAP_USD, cap_window="day",
                   budget_store=f"sqlite:///{tmp_path}/spend.db")
    assert send_traffic(fake_provider, served.url, ALICE_KEY, BOB_KEY) == EXPECTED_CODES
    doc = data(served).json()
    want, ledger = expected_from_metrics(served.url), expected_from_ledger(served.router.store)
    assert {r["model"]: r["usd"] for r in doc["spend"]["by_model"]} == pytest.approx(ledger["model"])
    assert {r["user"]: r["usd"] for r in doc["spend"]["by_user"]} == pytest.approx(ledger["user"])
    assert {r["day"]: r["usd"] for r in doc["spend"]["by_day"]} == pytest.approx(ledger["day"])
    assert doc["spend"]["total_usd"] == pytest.approx(ledger["total"]) == pytest.approx(want["spend"])
    assert set(ledger["model"]) == {"deepseek-v2", "gpt-4o"} and set(ledger["user"]) == {"alice", "bob"}
    assert {r["model"]: r["count"] for r in doc["requests"]["by_model"]} == want["answered"] \
        == {"deepseek-v2": 3, "gpt-4o": 2}
    assert doc["requests"]["escalated"] == want["escalated"] == 2
    assert doc["requests"]["escalated_share"] == pytest.approx(2 / 5)
    assert {r["reason"]: r["count"] for r in doc["escalation_reasons"]} == want["reasons"] == {"check:non_empty": 2}
    assert {r["type"]: r["count"] for r in doc["errors"]} == want["errors"] \
        == {"not_found": 1, "budget_exceeded": 1, "invalid_request": 1}
    assert doc["latency"]["count"] == 8
    assert doc["latency"]["p50_s"] == pytest.approx(quantile(0.5, want["buckets"]))
    assert doc["latency"]["p95_s"] == pytest.approx(quantile(0.95, want["buckets"]))
    caps = {(c["user"], c["window"]): c for c in doc["caps"]}
    assert set(caps) == {("alice", "day"), ("bob", "day")}
    for user in ("alice", "bob"):
        [usage] = served.router.store.snapshot(user=user, caps=served.router.caps).usages
        assert caps[user, "day"]["limit_usd"] == USER_CAP_USD
        assert caps[user, "day"]["remaining_usd"] == pytest.approx(usage.remaining_usd)
        assert caps[user, "day"]["spent_usd"] == pytest.approx(ledger["user"][user])


def test_the_json_needs_an_admin_key_and_the_page_holds_no_figures(serve, fake_provider):
    served = serve(keys=ADMIN_KEYS)
    assert data(served, key=None).status_code == 401
    assert data(served, key="sk-not-a-key-at-all").status_code == 401
    for key in (ALICE_KEY, BOB_KEY):                      # a user never sees the others' spend
        resp = data(served, key)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "admin_key_required"
    assert data(served).status_code == 200
    page = httpx.get(served.url + "/dashboard", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert httpx.get(served.url + "/dashboard/", timeout=30).text == page.text


def test_the_page_is_self_contained():
    from importlib.resources import files
    html = files("cascade.server").joinpath("dashboard.html").read_text()
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html) == []
    assert "@import" not in html and "url(" not in html and "<link" not in html
    assert "fetch(\"/dashboard/data.json\"" in html


def test_without_keys_the_dashboard_is_open(serve, fake_provider):
    served = serve()
    doc = data(served, key=None).json()
    assert doc["policy"] == "default" and doc["requests"]["total"] == 0 and doc["latency"]["p50_s"] is None


def test_admins_in_the_keys_file(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  {OPS_KEY}: ops\n  {ALICE_KEY}: alice\nadmins: [ops]\n")
    ring = load_keys(path)
    assert ring.is_admin("ops") and not ring.is_admin("alice") and not ring.is_admin(None)
    path.write_text(f"keys:\n  {ALICE_KEY}: alice\nadmins: [root]\n")
    with pytest.raises(ConfigError, match="'root' is not the user of any key") as info:
        load_keys(path)
    assert ALICE_KEY not in str(info.value)
    path.write_text(f"keys:\n  {ALICE_KEY}: alice\nadmins: alice\n")
    with pytest.raises(ConfigError, match="admins must be a list"):
        load_keys(path)


@pytest.mark.parametrize("q, buckets, want", [
    (0.5, [(0.1, 0), (0.2, 4), (float("inf"), 4)], 0.15),
    (0.5, [(0.1, 2), (float("inf"), 4)], 0.1),
    (0.95, [(0.1, 2), (float("inf"), 4)], 0.1),
    (0.5, [(1.0, 4), (float("inf"), 4)], 0.5),
    (0.5, [(1.0, 0), (float("inf"), 0)], None),
    (0.5, [], None),
])
def test_histogram_quantile(q, buckets, want):
    got = histogram_quantile(q, buckets)
    assert got == (pytest.approx(want) if want is not None else None)


def test_an_unreachable_store_is_a_503_not_a_crash(serve, fake_provider):
    from .conftest import free_port
    served = serve(budget_store=f"redis://127.0.0.1:{free_port()}/0", global_cap_usd=1.0)
    resp = data(served, key=None)
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "budget_store_unavailable"
