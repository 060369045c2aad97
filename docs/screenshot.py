"""Makes the README's pictures: docs/run-page.png, the page of a finished ai-summit run, and docs/batch-page.png,
the page of a finished batch (2 variations × 3 runs of the summit, 3 turns each) with its charts. All offline.

    .venv/bin/python docs/screenshot.py

Everything happens in a temporary data folder: a fresh database, one run, one batch (played by `run_batch`),
a web server on a free port, Debian's Chromium through Playwright.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN_PAGE = ROOT / "docs" / "run-page.png"
BATCH_PAGE = ROOT / "docs" / "batch-page.png"
BATCH_CONFIG = """experiment_name: Summit seeds
description: How much the summit's outcome depends on chance alone, two seeds, three runs each
base_scenario: ai-summit
variations:
  - {type: scenario_parameter, parameter: seed, values: [1, 11]}
runs_per_variation: 3
max_parallel: 2
turns: 3
provider: offline
"""


def main() -> int:
    from bench.live_latency import free_port, sign_in, wait_for_http

    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "SCENARIOLAB_DATA_DIR": folder, "SCENARIOLAB_OUTPUT_DIR": folder, "DATABASE_URL": "",
               "REDIS_URL": "", "DJANGO_SETTINGS_MODULE": "scenariolab_site.settings"}
        manage = [sys.executable, str(ROOT / "manage.py")]
        config = Path(folder) / "batch-config.yaml"
        config.write_text(BATCH_CONFIG)
        for args in (["migrate", "-v0"], ["migrate", "--database", "channels", "-v0"],
                     ["run_scenario", "ai-summit", "--seed", "3"], ["run_batch", str(config)]):
            subprocess.run(manage + args, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(manage + ["shell", "-c", "from django.contrib.auth.models import User; from runs.models import Run; "
                                 "from batches.models import Batch; "
                                 "u = User.objects.create_user('reader', password='screenshot-pass'); "
                                 "Run.objects.update(owner=u); Batch.objects.update(owner=u)"], env=env, check=True)
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
                page.screenshot(path=str(RUN_PAGE))
                page.goto(f"{base}/batches/1/")
                page.wait_for_function("Object.keys(window.batchCharts || {}).length > 0")
                page.screenshot(path=str(BATCH_PAGE), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    print(RUN_PAGE)
    print(BATCH_PAGE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
