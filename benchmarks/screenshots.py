"""The README's screenshots: ``/dashboard`` of a real ``cascade serve`` and the HTML replay report.

    python benchmarks/screenshots.py [--out docs]

Starts the scripted local provider (``FakeProvider``, no network, no real keys) and
``python -m cascade.server serve`` against it with API keys (an admin ``ops``), a per-user daily cap and a
SQLite ledger in a temporary directory; sends traffic (cheap answers, escalations after an empty cheap
answer, a budget refusal, an unknown model, a malformed body), opens ``/dashboard`` in the system's
chromium (Playwright; ``apt-get install chromium``) and saves ``docs/dashboard.png``; then runs
``cascade replay --policy default --sweep --html`` over the bundled sample and saves
``docs/replay-report.png``. PNGs are reduced to a 64-colour palette to stay small.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))          # tests.harness (the fake provider) lives beside the packages

import httpx  # noqa: E402

from tests.cascade.router.conftest import provider_env  # noqa: E402
from tests.cascade.server.dashboard_traffic import OPS_KEY, USER_CAP_USD, send_traffic  # noqa: E402
from tests.harness.fake_provider import FakeProvider  # noqa: E402
from tests.harness.processes import stop_process  # noqa: E402

ALICE, BOB = "sk-cascade-alice-0123456789", "sk-cascade-bob-9876543210"


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(provider_url: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    keys = tmp / "keys.yaml"
    keys.write_text(f"keys:\n  {ALICE}: alice\n  {BOB}: bob\n  {OPS_KEY}: ops\nadmins: [ops]\n")
    port = free_port()
    env = {**os.environ, **provider_env(provider_url), "CASCADE_SPOOL_DIR": str(tmp / "spool"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cascade.server", "serve", "--port", str(port), "--log-level",
                             "warning", "--keys", str(keys), "--budget-store", f"sqlite:///{tmp}/spend.db",
                             "--user-cap-usd", str(USER_CAP_USD), "--cap-window", "day"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_process(proc)
    raise SystemExit("cascade serve did not start")


def small_png(png: bytes, path: Path) -> int:
    from PIL import Image
    img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    img.save(path, format="PNG", optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("chromium") is None:
        raise SystemExit("needs the system chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    from tests.harness.browser import launch

    with tempfile.TemporaryDirectory(prefix="cascade-shots-") as tmp_name, FakeProvider() as fake, \
            sync_playwright() as pw:
        tmp = Path(tmp_name)
        proc, url = start_serve(fake.url, tmp)
        browser = launch(pw)
        try:
            codes = send_traffic(fake, url, ALICE, BOB, rounds=3)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{url}/dashboard?every=1#key={OPS_KEY}")
            page.wait_for_function(f"Number(document.querySelector('[data-field=\"requests-total\"]')"
                                   f".dataset.value) === {len(codes)}", timeout=30_000)
            size = small_png(page.screenshot(full_page=True), out / "dashboard.png")
            print(f"dashboard.png: {size:,} bytes, {len(codes)} requests")
            report = tmp / "report.html"
            subprocess.run([sys.executable, "-m", "cascade.cli", "replay", "--policy", "default", "--sweep",
                            "--html", str(report), "--quiet"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            page.goto(report.as_uri())
            size = small_png(page.screenshot(full_page=False), out / "replay-report.png")
            print(f"replay-report.png: {size:,} bytes")
        finally:
            browser.close()
            stop_process(proc)


if __name__ == "__main__":
    main()
