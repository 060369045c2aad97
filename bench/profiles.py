"""Runs a benchmark's measuring step once per profile, each in a fresh process and temporary data folder.

Settings are read from the environment when Django starts, so each profile needs a process of its own: the
benchmark script calls itself with `--measure`, which prints one JSON line. The scale-out profile gets its own
PostgreSQL database, created before and dropped after, and a Huey queue name of its own on Redis.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def postgres_database(url: str, *, drop: bool = False) -> str | None:
    """Create (or drop) the benchmark's own database; None if done, else why PostgreSQL cannot be reached."""
    import psycopg

    base, name = url.rsplit("/", 1)
    try:
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            if not drop:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def measure_in(script: str, args: list[str], env: dict[str, str], profile: str) -> dict:
    done = subprocess.run([sys.executable, script, "--measure", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"profile": profile, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return {"profile": profile, **json.loads(done.stdout.strip().splitlines()[-1])}


def measure_each_profile(script: str, args: list[str], *, database_url: str, redis_url: str | None) -> list[dict]:
    """The embedded profile, then scale-out: PostgreSQL (and Redis, when `redis_url` is given)."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        files = {"SCENARIOLAB_DATA_DIR": folder, "SCENARIOLAB_OUTPUT_DIR": folder}
        results.append(measure_in(script, args, {**files, "DATABASE_URL": "", "REDIS_URL": ""}, "embedded"))
    problem = postgres_database(database_url)
    if problem:
        return [*results, {"profile": "scale-out", "error": f"cannot reach PostgreSQL: {problem}"}]
    try:
        with tempfile.TemporaryDirectory() as folder:
            env = {"SCENARIOLAB_DATA_DIR": folder, "SCENARIOLAB_OUTPUT_DIR": folder, "DATABASE_URL": database_url,
                   "REDIS_URL": redis_url or "", "SCENARIOLAB_HUEY_NAME": f"bench-{uuid.uuid4().hex[:8]}"}
            results.append(measure_in(script, args, env, "scale-out"))
    finally:
        postgres_database(database_url, drop=True)
    return results


def embedded(script: str, args: list[str], profile: str = "embedded") -> dict:
    """`script --measure args` once on the embedded profile, in a temporary data folder of its own."""
    with tempfile.TemporaryDirectory() as folder:
        env = {"SCENARIOLAB_DATA_DIR": folder, "SCENARIOLAB_OUTPUT_DIR": folder, "DATABASE_URL": "", "REDIS_URL": "",
               "SCENARIOLAB_LOG_LEVEL": "ERROR"}
        return measure_in(script, args, env, profile)


def django_ready() -> None:
    """In a measuring process: Django set up from this environment, its databases migrated."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if "channels" in settings.DATABASES:
        call_command("migrate", database="channels", verbosity=0)


def start(command: list[str], *, environment: dict[str, str] | None = None, **env: str) -> subprocess.Popen:
    """A process of the project (`manage.py …` or a bench script) with `environment` (by default this process's)
    plus `env`. Its output goes to a file: a pipe nobody reads would fill up and stop it."""
    log = tempfile.TemporaryFile()
    base = os.environ if environment is None else environment
    process = subprocess.Popen([sys.executable, *command], cwd=ROOT, env={**base, **env}, stdout=log,
                               stderr=subprocess.STDOUT)
    process.log = log  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen, *, tail: int | None = 2000) -> str:
    """Stop a process started by `start` (if still alive) and return the last `tail` characters it printed (None:
    all of it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    process.log.seek(0)  # type: ignore[attr-defined]
    printed = process.log.read().decode(errors="replace")  # type: ignore[attr-defined]
    return printed if tail is None else printed[-tail:]


def wait_for(condition, *, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
