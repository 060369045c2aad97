"""Start-up: `manage.py run_scenario --help`, and the time from process start to the first LLM call.

    .venv/bin/python bench/startup.py [--repeats 3]

Both on the embedded profile in a fresh data folder (migrated first, as `make demo` does). The first LLM call
is the first chat request the loopback fake LLM server receives from `manage.py run_scenario ai-summit
--turns 1`, timed from just before the process is spawned. Each figure is the median of --repeats (the
first run also imports the bundled scenarios into the fresh database). Target: under 1 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, failed, report  # noqa: E402
from bench.profiles import embedded  # noqa: E402

TARGET_S = 1.0


def help_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "run_scenario", "--help"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - started


def first_call_seconds(server) -> float:
    """Spawn a one-turn run and time the fake server's first chat request; the run then finishes."""
    server.reset_stats()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "manage.py", "run_scenario", "ai-summit", "--turns", "1", "--no-cache",
                                "--credit-limit", "100"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while server.stats["requests"] == 0:
            if process.poll() is not None:
                raise RuntimeError(f"run_scenario ended ({process.returncode}) before any LLM call: "
                                   f"{process.stderr.read().decode(errors='replace').strip()[-300:]}")
            if time.perf_counter() - started > 60:
                raise RuntimeError("no LLM call within 60 s")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        process.wait(120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return elapsed


def measure(repeats: int) -> dict:
    from bench.profiles import django_ready
    from engine.testing.fake_llm import FakeLLMServer

    django_ready()
    # As an installed copy runs: Python keeps its bytecode cache (some shells turn it off, and recompiling the
    # project's modules then costs every process ~0.1 s). The first run below writes it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    server = FakeLLMServer(latency=0).start_in_thread()
    os.environ["SCENARIOLAB_LLM_BASE_URL"] = server.base_url  # the child run_scenario inherits it
    try:
        first_call_seconds(server)  # a warm-up: the bytecode cache, the bundled scenarios imported
        first = [first_call_seconds(server) for _ in range(repeats)]
    finally:
        server.stop()
    helps = [help_seconds() for _ in range(repeats)]
    return {"help_s": statistics.median(helps), "first_call_s": statistics.median(first), "first_call_all": first}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.repeats)))
        return 0
    r = embedded(__file__, ["--repeats", str(args.repeats)])
    names = ("start-up: manage.py run_scenario --help", "start-up: process start → first LLM call")
    if "error" in r:
        figures = [failed(name, r["error"], "s", TARGET_S, "<") for name in names]
    else:
        figures = [Figure(names[0], round(r["help_s"], 3), "s", TARGET_S, "<"),
                   Figure(names[1], round(r["first_call_s"], 3), "s", TARGET_S, "<",
                          note="each: " + ", ".join(f"{s:.2f}" for s in r["first_call_all"]))]
    report(f"Start-up, median of {args.repeats} (embedded profile, fake LLM server)", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
