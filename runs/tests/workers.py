"""Real `manage.py run_huey` worker processes for tests, pointed at the test database and queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection, connections

from runs.models import Run, RunStatus

MANAGE = Path(settings.BASE_DIR) / "manage.py"


def worker_environment(**extra: str) -> dict[str, str]:
    """This process's environment (the test settings' folders and queue name), with the test database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scenariolab_site.settings_test", "SCENARIOLAB_HEARTBEAT_SECONDS": "0.5"}
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        env["SCENARIOLAB_DATABASE_PATH"] = str(name)
    if "channels" in connections:  # the embedded profile's channel layer: the test's copy, when it has one
        env["SCENARIOLAB_CHANNELS_PATH"] = str(connections["channels"].settings_dict["NAME"])
    else:
        url = os.environ["DATABASE_URL"]
        env["DATABASE_URL"] = url[: url.rindex("/") + 1] + name
    env.update(extra)
    return env


def start_worker(**extra: str) -> subprocess.Popen:
    # Its log goes to a file: a pipe nobody reads until the end would fill up and stop the worker.
    log = tempfile.TemporaryFile()
    worker = subprocess.Popen(
        [sys.executable, str(MANAGE), "run_huey", "--workers", "1", "--worker-type", "thread", "--delay", "0.1"],
        env=worker_environment(**extra),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker.log = log  # type: ignore[attr-defined]
    return worker


def stop(worker: subprocess.Popen) -> str:
    """Stop a worker (if still alive) and return what it logged."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    worker.log.seek(0)
    return worker.log.read().decode(errors="replace")


def stop_with_sigterm(worker: subprocess.Popen, *, timeout: float = 30) -> tuple[float, str]:
    """Stop a worker as systemd does (SIGTERM): how long it took to exit, and what it logged."""
    at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout)
    return time.monotonic() - at, stop(worker)


@contextmanager
def environment(**values: str):
    """These variables in this process's environment (a run's plan reads them) for the block, then as before."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def wait_for(condition: Callable[[], object], *, timeout: float = 60, what: str = "the condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


FINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.HALTED, RunStatus.PAUSED, RunStatus.CANCELLED)


def final_status(run: Run) -> str | None:
    """The run's status once it has stopped (completed, failed, halted, paused, cancelled), else None."""
    status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
    return status if status in FINAL else None
