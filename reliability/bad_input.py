"""Scenario "bad input": the bad-input tests with their full example counts (SCENARIOLAB_RELIABILITY_FULL=1),
one trial per group: hostile scenario folders through the loader, folders and zips through the import
services, damaged V1 state documents and files, oversized bodies and uploads, schemathesis over the whole API.

The same tests run bounded in `make test` (30 hypothesis examples each, 8 per API operation), so the bounded
suite plays no trial here. Each group runs as its own pytest process on the embedded profile with a fresh
temporary data folder: they need no worker processes, and the table's own test database stays untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from reliability import Result

ROOT = Path(__file__).resolve().parents[1]
GROUPS: list[tuple[str, list[str]]] = [
    ("loader", ["engine/scenario/tests/test_loader_fuzz.py"]),
    ("import", ["scenarios/tests/test_import_fuzz.py"]),
    ("V1 state", ["engine/v1/tests/test_state_fuzz.py"]),
    ("oversized", ["scenariolab_site/tests/test_oversized.py"]),
    ("API", ["scenariolab_site/tests/test_api_schema.py"]),
]
# What the parent process's test settings put in the environment: the child makes its own.
INHERITED = ("DATABASE_URL", "REDIS_URL", "SCENARIOLAB_DATA_DIR", "SCENARIOLAB_OUTPUT_DIR", "SCENARIOLAB_HUEY_NAME",
             "SCENARIOLAB_TEST_DATABASE_PATH", "SCENARIOLAB_TEST_CHANNELS_PATH", "SCENARIOLAB_TEST_PROCESS")


def _pytest(paths: list[str], seed: int) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED} | {"SCENARIOLAB_RELIABILITY_FULL": "1"}
    command = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else done.stderr.strip()[-300:]
    if done.returncode != 0:
        failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        summary = "; ".join(failed[:3]) or summary
    return done.returncode == 0, summary


def run(trials: int, *, seed: int = 0) -> Result:
    if not trials:
        return Result("bad input", 0, 0, "played in make test as bounded pytest tests; in full by make reliability")
    chosen = [GROUPS[i % len(GROUPS)] for i in range(trials)]
    passed, notes, started = 0, [], time.monotonic()
    for name, paths in chosen:
        ok, summary = _pytest(paths, seed)
        passed += ok
        tests = re.search(r"(\d+) passed", summary)
        notes.append(f"{name}: {tests.group(1) + ' tests' if ok and tests else 'FAILED ' + summary}")
    figure = ("no traceback, every load error located, nothing stored by a refused import, no 5xx; "
              "500 hypothesis examples per fuzz test, 200 per API operation; "
              f"{', '.join(notes)}; {time.monotonic() - started:.0f} s")
    return Result("bad input", trials, passed, figure)
