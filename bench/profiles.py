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
import uuid


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
