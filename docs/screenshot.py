"""Makes docs/run-page.png: the page of a finished ai-summit run (offline), as the README shows it.

    .venv/bin/python docs/screenshot.py

Everything happens in a temporary data folder: a fresh database, one run, a web server on a free port,
Debian's Chromium through Playwright.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "run-page.png"


def main() -> int:
    from bench.live_latency import free_port, sign_in, wait_for_http

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "SCENARIOLAB_DATA_DIR": folder, "SCENARIOLAB_OUTPUT_DIR": folder, "DATABASE_URL": "",
               "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "scenariolab_site.settings"}
        manage = [sys.executable, str(ROOT / "manage.py")]
        for args in (["migrate", "-v0"], ["migrate", "--database", "channels", "-v0"],
                     ["run_scenario", "ai-summit", "--seed", "3"]):
            subprocess.run(manage + args, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(manage + ["shell", "-c", "from django.contrib.auth.models import User; from runs.models import Run; "
                                 "u = User.objects.create_user('reader', password='screenshot-pass'); "
                                 "Run.objects.update(owner=u)"], env=env, check=True)
        port = free_port()
        server = subprocess.Popen(manage + ["runserver", f"127.0.0.1:{port}", "--noreload"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/accounts/login/")
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=os.environ.get("SCENARIOLAB_CHROMIUM", "/usr/bin/chromium"))
                page = browser.new_page(viewport={"width": 1280, "height": 1800})
                sign_in(page, base, "reader", "screenshot-pass")
                page.goto(f"{base}/runs/1/")
                page.wait_for_function("document.getElementById('live-indicator').textContent === 'live'")
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
