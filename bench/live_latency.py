"""Live-update latency: from an event emitted in a worker process to the run page's DOM showing it.

    .venv/bin/python bench/live_latency.py [--events 200] [--database-url postgres://…] [--redis-url redis://…]

For each profile (embedded: SQLite files and the SQLite channel layer; scale-out: PostgreSQL, Redis-backed
Huey and channels-redis) it starts the web server (daphne) and a Huey worker as separate processes, opens a
queued run's page in Chromium, starts the run, and records for every event the page applies the time from
the worker's emit (the event's timestamp) to the page's `run:event` notification, on the same clock.
The run is played against the loopback fake LLM server (50 ms a call), so events arrive at a realistic pace.
Prints p50/p95 per profile (bench/figures.py) for `python -m bench`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, failed, p95, p95_noise, report  # noqa: E402
from bench.profiles import measure_each_profile  # noqa: E402

CHROMIUM = os.environ.get("SCENARIOLAB_CHROMIUM", "/usr/bin/chromium")
TARGET_P95_MS = {"embedded": 100, "Redis": 60}  # one run, one page
COLLECT = """
window.__latencies = [];
document.addEventListener("run:event", function (e) {
  if (e.detail.timestamp) window.__latencies.push(Date.now() - e.detail.timestamp * 1000);
});
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerExited(RuntimeError):
    """The server process being waited for ended before it answered."""


def wait_for_http(url: str, timeout: float = 60, *, process: subprocess.Popen | None = None, every: float = 0.2) -> None:
    """Poll `url` until it answers; with `process`, stop as soon as that server process has exited."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerExited(f"the web server exited ({process.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(every)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def sign_in(page, base: str, username: str, password: str) -> None:
    """Sign in through the site's own form (scripts and benchmarks see the site as a person does)."""
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def measure(events: int) -> dict:
    """In a process whose environment chose the profile: serve, work, watch, time."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs a loop in this thread
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from playwright.sync_api import sync_playwright

    from engine import Scenario
    from engine.testing.fake_llm import FakeLLMServer
    from runs.models import RunEvent
    from runs.services import run_create, run_enqueue, run_plan

    call_command("migrate", verbosity=0)
    if "channels" in settings.DATABASES:
        call_command("migrate", database="channels", verbosity=0)
    user = User.objects.create_user("bench", password="bench-password-1")
    llm = FakeLLMServer(latency=0.05).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = llm.base_url
    config = Scenario.load(ROOT / "scenarios" / "library" / "ai-summit")
    turns = max(1, -(-events // 60))  # 60 to 100 events a turn
    run = run_create(plan=run_plan(config=config, turns=turns, use_cache=False), slug="ai-summit", owner=user)

    port = free_port()
    env = {**os.environ}
    processes = [
        subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "manage.py", "run_huey"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/accounts/login/")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            page.add_init_script(COLLECT)
            sign_in(page, base, "bench", "bench-password-1")
            page.goto(f"{base}/runs/{run.pk}/")
            page.wait_for_function("document.getElementById('live-indicator').textContent === 'live'")
            run_enqueue(run=run)  # the page is listening before the first event
            page.wait_for_selector("#run-status.status-completed", timeout=300_000)
            latencies = page.evaluate("window.__latencies")
            browser.close()
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        llm.stop()
    stored = RunEvent.objects.filter(run=run).count()
    taken = latencies[:events]
    return {
        "events": len(taken),
        "stored_events": stored,
        "p50_ms": statistics.median(taken),
        "p95_ms": p95(taken),
        "p95_noise_ms": p95_noise(taken),
        "max_ms": max(taken),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scenariolab_live_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.events)))
        return 0
    results = measure_each_profile(__file__, ["--events", str(args.events)], database_url=args.database_url,
                                   redis_url=args.redis_url)
    figures = []
    for r, profile in zip(results, ("embedded", "Redis")):
        # The SQLite channel layer is polled; Redis pushes.
        target = (TARGET_P95_MS[profile], "<=")
        if "error" in r:
            figures += [failed(f"live update latency p50, {profile}", r["error"], "ms"),
                        failed(f"live update latency p95, {profile}", r["error"], "ms", *target)]
            continue
        figures += [Figure(f"live update latency p50, {profile}", round(r["p50_ms"]), "ms"),
                    Figure(f"live update latency p95, {profile}", round(r["p95_ms"]), "ms", *target,
                           noise=round(r["p95_noise_ms"], 1),
                           note=f"max {r['max_ms']:.0f} ms, {r['events']} events")]
    report(f"Live update latency, worker emit → page DOM in Chromium, {args.events} events", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
