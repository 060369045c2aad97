"""`python -m reliability [--full] [--only NAME] [--seed N] [--profiles env|both]`: play the scenarios in a fresh
test database and print one table (scenario, profile, trials, passed, figure); reliability/results.json keeps
it, with date and machine.

Without --full each scenario plays its bounded trial count. The scenarios play in the profile of the
environment, as the test suite's do (DATABASE_URL and REDIS_URL select PostgreSQL + Redis). With `--profiles
both` (the default with --full) those marked `both_profiles` are then played in the other profile too, by a
child process whose environment selects it: PostgreSQL + Redis at SCALE_OUT_DATABASE_URL and
SCALE_OUT_REDIS_URL (defaults below, as in the Makefile), or the embedded profile with both unset.
On PostgreSQL the test database is test_<name>_reliability_<pid>, so concurrent runs keep their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")
SCALE_OUT = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test", "REDIS_URL": "redis://127.0.0.1:6379/0"}
# What settings_test derives for a process and sets in its environment: a child profile picks its own.
DERIVED = ("SCENARIOLAB_DATA_DIR", "SCENARIOLAB_OUTPUT_DIR", "SCENARIOLAB_HUEY_NAME",
           "SCENARIOLAB_TEST_DATABASE_PATH", "SCENARIOLAB_TEST_CHANNELS_PATH")


class DatabaseUnavailable(Exception):
    """The profile's database cannot be reached or its test database made."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full trial counts (`make reliability`)")
    parser.add_argument("--only", action="append", metavar="NAME", help="only this scenario (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profiles", choices=("env", "both"),
                        help="env: the environment's profile only; both: scenarios marked both_profiles in the other "
                             "profile too (default: both with --full, else env)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # a child profile's rows
    args = parser.parse_args(argv)
    both = args.profiles == "both" or (args.profiles is None and args.full)
    environment = dict(os.environ)  # before settings_test adds its folders: a child profile gets its own

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings_test")
    import django

    django.setup()
    from django.conf import settings

    from reliability.scenarios import SCENARIOS

    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    if args.only and len(chosen) != len(args.only):
        known = ", ".join(repr(s.name) for s in SCENARIOS)
        parser.error(f"unknown scenario in {args.only}; known: {known}")

    try:
        rows = play(chosen, full=args.full, seed=args.seed, profile=settings.PROFILE)
    except DatabaseUnavailable as exc:
        print(f"python -m reliability: {exc}", file=sys.stderr)
        args.results.write_text(json.dumps({"error": str(exc)}) + "\n")
        return 2
    if both:
        others = [s for s in chosen if s.both_profiles]
        if others:
            rows += play_other_profile(others, full=args.full, seed=args.seed, profile=settings.PROFILE,
                                       environment=environment)

    print(table(rows))
    args.results.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "full": args.full, "seed": args.seed,
        "machine": " ".join(platform.uname()), "cpus": os.cpu_count(), "results": rows,
    }, indent=2) + "\n")
    return 0 if all(r["passed"] == r["trials"] for r in rows) else 1


def play(chosen, *, full: bool, seed: int, profile: str) -> list[dict]:
    """Each scenario in this process's profile, in a fresh test database: one row each."""
    from django.conf import settings
    from django.db import OperationalError, connections
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases, teardown_test_environment

    from reliability import Result

    default = connections["default"].settings_dict
    if default["ENGINE"].endswith("postgresql"):
        default["TEST"]["NAME"] = f"test_{default['NAME']}_reliability_{os.getpid()}"
    # As Django's test runner and pytest-django do: the test client's host ("testserver") is allowed, mail
    # stays in memory. Without it every request of the permissions scenario was refused as a bad host.
    setup_test_environment()
    try:
        old = setup_databases(verbosity=0, interactive=False, aliases=set(settings.DATABASES))
    except OperationalError as exc:
        teardown_test_environment()
        raise DatabaseUnavailable(f"cannot create the {profile} profile's test database: "
                                  f"{str(exc).strip().splitlines()[0]}") from exc
    rows: list[dict] = []
    try:
        for scenario in chosen:
            trials = scenario.full if full else scenario.bounded
            print(f"{scenario.name} ({profile}): {trials} trials…", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                result = scenario.run(trials, seed=seed)
            except Exception as exc:  # noqa: BLE001 - a broken scenario is a failed row, not a lost table
                traceback.print_exc()
                result = Result(scenario.name, trials, 0, f"the scenario itself failed: {exc!r}")
            rows.append({**result._asdict(), "profile": profile, "seconds": round(time.monotonic() - started, 1)})
    finally:
        teardown_databases(old, verbosity=0)
        teardown_test_environment()
    return rows


def play_other_profile(chosen, *, full: bool, seed: int, profile: str, environment: dict[str, str]) -> list[dict]:
    """The same scenarios in a child process whose environment selects the other profile; its rows."""
    env = {k: v for k, v in environment.items() if k not in DERIVED}
    if profile == "embedded":
        other = "scale-out"
        env.update({key: os.environ.get(f"SCALE_OUT_{key}") or default for key, default in SCALE_OUT.items()})
    else:
        other = "embedded"
        env.update({"DATABASE_URL": "", "REDIS_URL": ""})
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "results.json"
        command = [sys.executable, "-m", "reliability", "--seed", str(seed), "--profiles", "env", "--results", str(results),
                   *(["--full"] if full else []), *(arg for s in chosen for arg in ("--only", s.name))]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=False)  # its progress: on stderr
        played = json.loads(results.read_text()) if results.exists() else {}
    if "results" in played:
        return played["results"]
    why = played.get("error") or f"the {other} profile's process failed (exit {done.returncode}; its output is above)"
    return [{"scenario": s.name, "trials": s.full if full else s.bounded, "passed": 0, "figure": why,
             "profile": other, "seconds": 0.0} for s in chosen]


def table(rows: list[dict]) -> str:
    head = ("scenario", "profile", "trials", "passed", "figure")
    cells = [head, *((r["scenario"], r["profile"], str(r["trials"]), str(r["passed"]), r["figure"]) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = [" | ".join([*(c.ljust(w) for c, w in zip(row[:4], widths)), row[4]]) for row in cells]
    lines.insert(1, "-+-".join([*("-" * w for w in widths), "-" * 6]))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
